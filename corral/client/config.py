"""Where the client finds the master and its token.

Resolution order (the first that gives a URL wins):

1. ``CORRAL_URL`` (and ``CORRAL_TOKEN``) from the environment;
2. ``client.json`` in the data directory (``$CORRAL_DATA``, default ``./.corral``), written by
   ``corral up`` next to the master's state;
3. ``$XDG_CONFIG_HOME/corral/config.json`` (default ``~/.config/corral/config.json``);
4. ``http://127.0.0.1:8080`` without a token.

A token travels with the URL it was found with, so a ``CORRAL_URL`` pointing at another master
never receives a token read from a local file. ``CORRAL_TOKEN`` alone overrides the token of
whatever source gave the URL.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from corral.client.errors import ClientError
from corral.client.masters import json_url

DEFAULT_URL = "http://127.0.0.1:8080"
CLIENT_FILE = "client.json"


class ConfigError(ClientError):
    """A configuration file exists but cannot be used."""


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """The master's base URL (several masters': separated by commas) and the bearer token to
    send (``None``: send none)."""

    url: str
    token: str | None = None


def data_dir_config_path(env: Mapping[str, str] | None = None) -> Path:
    """``client.json`` in the data directory: ``$CORRAL_DATA``, else ``./.corral``."""
    env = os.environ if env is None else env
    return Path(env.get("CORRAL_DATA") or ".corral") / CLIENT_FILE


def user_config_path(env: Mapping[str, str] | None = None) -> Path:
    """The per-user file: ``$XDG_CONFIG_HOME/corral/config.json`` (XDG's default if unset)."""
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "corral" / "config.json"


def read_config_file(path: Path) -> ClientConfig:
    """Read one JSON config file ``{"url": ..., "token": ...}``; ``url`` may be a list of
    the masters' URLs."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read client config {path}: {e}") from None
    url = json_url(data.get("url")) if isinstance(data, dict) else None
    token = data.get("token") if isinstance(data, dict) else None
    if url is None:
        raise ConfigError(f"client config {path} has no 'url' (a URL, or a list of them)")
    if token is not None and not isinstance(token, str):
        raise ConfigError(f"client config {path}: 'token' must be a string")
    return ClientConfig(url=url, token=token or None)


def load_config(env: Mapping[str, str] | None = None) -> ClientConfig:
    """Find the master's URL and token (see the module docstring for the order)."""
    env = os.environ if env is None else env
    env_token = env.get("CORRAL_TOKEN") or None
    if env.get("CORRAL_URL"):
        return ClientConfig(url=env["CORRAL_URL"], token=env_token)
    for path in (data_dir_config_path(env), user_config_path(env)):
        if path.is_file():
            found = read_config_file(path)
            return ClientConfig(url=found.url, token=env_token or found.token)
    return ClientConfig(url=DEFAULT_URL, token=env_token)


def write_config(path: Path | str, url: str, token: str | None) -> None:
    """Write a config file readable by its owner only (0600), creating parent directories.

    The file is written under a temporary name and renamed, so a reader never sees half of it
    and the token is never readable by others, not even for a moment.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps({"url": url, "token": token}, indent=2) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mkstemp uses 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
