"""Where the client finds the master: environment, data dir, user config, default."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from corral.client import (
    ClientConfig,
    ConfigError,
    load_config,
    user_config_path,
    write_config,
)
from corral.client.config import DEFAULT_URL


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """An environment whose data dir and XDG config dir are empty temporary directories."""
    return {"CORRAL_DATA": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}


def test_without_any_configuration_the_local_default_url_is_used(env: dict[str, str]) -> None:
    assert load_config(env) == ClientConfig(DEFAULT_URL, None)


def test_the_user_config_file_is_read_when_there_is_no_data_dir_file(
    env: dict[str, str],
) -> None:
    write_config(Path(env["XDG_CONFIG_HOME"]) / "corral/config.json", "http://xdg:1", "t-xdg")
    assert load_config(env) == ClientConfig("http://xdg:1", "t-xdg")


def test_the_data_dir_file_wins_over_the_user_config_file(env: dict[str, str]) -> None:
    write_config(Path(env["XDG_CONFIG_HOME"]) / "corral/config.json", "http://xdg:1", "t-xdg")
    write_config(Path(env["CORRAL_DATA"]) / "client.json", "http://data:2", "t-data")
    assert load_config(env) == ClientConfig("http://data:2", "t-data")


def test_the_data_dir_defaults_to_dot_corral_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_config(tmp_path / ".corral/client.json", "http://here:3", None)
    assert load_config({"XDG_CONFIG_HOME": str(tmp_path / "xdg")}).url == "http://here:3"


def test_corral_url_wins_and_never_receives_a_token_from_a_file(env: dict[str, str]) -> None:
    write_config(Path(env["CORRAL_DATA"]) / "client.json", "http://data:2", "t-data")
    assert load_config(env | {"CORRAL_URL": "http://env:4"}) == ClientConfig("http://env:4")
    with_token = env | {"CORRAL_URL": "http://env:4", "CORRAL_TOKEN": "t-env"}
    assert load_config(with_token) == ClientConfig("http://env:4", "t-env")


def test_corral_token_alone_overrides_the_token_of_the_file(env: dict[str, str]) -> None:
    write_config(Path(env["CORRAL_DATA"]) / "client.json", "http://data:2", "t-data")
    assert load_config(env | {"CORRAL_TOKEN": "t-env"}) == ClientConfig("http://data:2", "t-env")


def test_the_user_config_path_follows_xdg_config_home() -> None:
    assert user_config_path({"XDG_CONFIG_HOME": "/x"}) == Path("/x/corral/config.json")
    assert user_config_path({}) == Path.home() / ".config/corral/config.json"


def test_write_config_creates_parents_and_a_file_only_its_owner_can_read(tmp_path: Path) -> None:
    path = tmp_path / "a/b/config.json"
    write_config(path, "http://m:5", "secret")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {"url": "http://m:5", "token": "secret"}
    assert [p.name for p in path.parent.iterdir()] == ["config.json"]  # no temporary left


def test_write_config_over_a_readable_file_leaves_it_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text("{}")
    path.chmod(0o644)
    write_config(path, "http://m:5", "secret")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_broken_config_file_is_an_error_naming_the_file(env: dict[str, str]) -> None:
    path = Path(env["CORRAL_DATA"]) / "client.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="client.json"):
        load_config(env)
    path.write_text('{"token": "t"}')
    with pytest.raises(ConfigError, match="has no 'url'"):
        load_config(env)
