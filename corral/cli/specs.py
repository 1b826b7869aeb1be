"""Turning what the user typed or wrote into validated ``JobSpec``s and ``ServiceSpec``s,
before any request.

Validating here gives the same field-naming messages as the master's 422 answers, without a
round trip, and ``apply`` checks every spec of a file before sending the first.
"""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from corral.cli.context import InvalidInput
from corral.client import describe_errors
from corral.spec.jobs import JobSpec
from corral.spec.services import ServiceSpec

Spec = JobSpec | ServiceSpec
Kind = Literal["job", "service"]
# Fields only a Marathon app has at its top level (a native service has "task" instead).
MARATHON_APP_FIELDS = ("cmd", "args", "container")


def generated_name() -> str:
    """A fresh job name for ``corral run`` without ``--name``: ``run-<6 hex>``."""
    return f"run-{secrets.token_hex(3)}"


def split_pairs(values: Sequence[str], option: str) -> list[tuple[str, str]]:
    """Split ``K=V`` option values; the value may itself contain ``=``."""
    pairs = []
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            raise InvalidInput(f"{option} {value!r}: expected NAME=VALUE")
        pairs.append((key, rest))
    return pairs


def params_from_options(values: Sequence[str]) -> dict[str, list[str]]:
    """``--param NAME=v1,v2`` values as a sweep; repeating a NAME adds to its values."""
    params: dict[str, list[str]] = {}
    for name, rest in split_pairs(values, "--param"):
        params.setdefault(name, []).extend(v for v in rest.split(",") if v != "")
    return params


def command_fields(args: Sequence[str], shell: bool) -> dict[str, Any]:
    """``{"command": argv}``, or ``{"shell": line}`` with ``--shell`` or one spaced argument.

    With ``--shell`` the arguments are joined with spaces, as ssh does. A lone argument holding
    a space (``corral run "make -j4 && ./test"``) is also a shell line: no program is named so.
    """
    if not args:
        raise InvalidInput("no command given: corral run [OPTIONS] -- CMD [ARGS]...")
    if shell or (len(args) == 1 and any(c.isspace() for c in args[0])):
        return {"shell": " ".join(args)}
    return {"command": list(args)}


def docker_fields(image: str | None, volumes: Sequence[str]) -> dict[str, Any]:
    """``{"docker": {...}}`` from ``--image`` and ``--volume HOST:CONTAINER[:ro|:rw]``."""
    if image is None:
        if volumes:
            raise InvalidInput("--volume needs --image: only containers get volumes")
        return {}
    mounts = []
    for v in volumes:
        parts = v.split(":")
        mode = "RW"
        if len(parts) == 3 and parts[2].lower() in ("ro", "rw"):
            mode = parts.pop().upper()
        if len(parts) != 2 or not all(parts):
            raise InvalidInput(f"--volume {v!r}: expected HOST:CONTAINER[:ro|:rw]")
        mounts.append({"host_path": parts[0], "container_path": parts[1], "mode": mode})
    return {"docker": {"image": image, "volumes": mounts}}


def build_spec(data: Mapping[str, Any], where: str = "") -> JobSpec:
    """Validate a spec; ``InvalidInput`` names each bad field (prefixed by ``where``)."""
    try:
        return JobSpec.model_validate(data)
    except ValidationError as e:
        prefix = f"{where}: " if where else ""
        raise InvalidInput(prefix + describe_errors(e.errors())) from None


def without_none(values: Mapping[str, Any]) -> dict[str, Any]:
    """Leave out options not given, so the spec's defaults apply."""
    return {k: v for k, v in values.items() if v is not None}


def read_documents(path: str) -> Any:
    """Read a JSON or YAML file (``-`` for stdin); ``.json`` files are read as strict JSON."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise InvalidInput(f"cannot read {path}: {e.strerror or e}") from None
    try:
        if path.endswith(".json"):
            return json.loads(text)
        return yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as e:
        kind = "JSON" if path.endswith(".json") else "YAML"
        raise InvalidInput(f"{path} is not valid {kind}: {e}") from None


def build_service(data: Mapping[str, Any], where: str = "") -> ServiceSpec:
    """Validate a service spec; ``InvalidInput`` names each bad field (prefixed by ``where``)."""
    try:
        return ServiceSpec.model_validate(data)
    except ValidationError as e:
        prefix = f"{where}: " if where else ""
        raise InvalidInput(prefix + describe_errors(e.errors())) from None


def is_marathon_app(data: Mapping[str, Any]) -> bool:
    """A Marathon app document: no ``kind``, an ``id``, and Marathon's way to say what runs."""
    return "kind" not in data and "id" in data and any(k in data for k in MARATHON_APP_FIELDS)


def marathon_app(data: Mapping[str, Any], where: str) -> ServiceSpec:
    """A Marathon app translated into a service spec, as ``/v2/apps`` translates it;
    ``InvalidInput`` names each problem at its Marathon path (``/healthChecks(0)/portIndex``)."""
    # Imported here: its models cost a tenth of a second that other commands need not pay.
    from corral.spec.marathon import MarathonInvalid, app_to_spec

    try:
        return app_to_spec(dict(data))
    except MarathonInvalid as e:
        raise InvalidInput(f"{where}: {e}") from None


def build_document(data: Any, where: str, default: Kind) -> Spec:
    """A job or a service, by the document's ``kind`` (``default`` when it has none); a
    Marathon app is a service."""
    if not isinstance(data, Mapping):
        raise InvalidInput(f"{where}: expected a spec (a mapping), not {type(data).__name__}")
    if is_marathon_app(data):
        return marathon_app(data, where)
    kind = data.get("kind", default)
    if kind == "service":
        return build_service(data, where)
    if kind == "job":
        return build_spec(data, where)
    raise InvalidInput(f"{where}: kind {kind!r} is neither 'job' nor 'service'")


def load_specs(path: str, default: Kind = "job") -> list[Spec]:
    """Every spec in a file that holds one spec or a list of them, all validated; each is a
    job or a service by its ``kind`` (``default`` when it has none)."""
    data = read_documents(path)
    if isinstance(data, dict):
        return [build_document(data, path, default)]
    if isinstance(data, list) and data:
        return [build_document(item, f"{path}[{i}]", default) for i, item in enumerate(data)]
    raise InvalidInput(f"{path}: expected a spec (a mapping) or a list of them")
