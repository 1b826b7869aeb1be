"""Container settings of a task: image, network, ports, volumes and extra docker parameters."""

from __future__ import annotations

import posixpath
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from corral.spec import limits

# Text that reaches a process or a mount as one string: no NUL, a few KiB at most.
ShortText = Annotated[str, AfterValidator(limits.short_text)]
NoNul = Annotated[str, AfterValidator(limits.no_nul)]

# Docker run parameters a task may pass as ``parameters`` (Marathon's and Chronos' name), and
# those only an agent started with --allow-privileged accepts: they reach outside the container.
SAFE_PARAMETERS = frozenset(
    {
        "shm-size",
        "ulimit",
        "hostname",
        "init",
        "read-only",
        "tmpfs",
        "cap-drop",
        "label",
        "memory-swappiness",
        "stop-signal",
        "log-driver",
    }
)
PRIVILEGED_PARAMETERS = frozenset({"cap-add", "pid", "ipc", "device", "security-opt", "uts"})


class PortMapping(BaseModel):
    """A container port published on a host port (0 = any free port of the agent)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    container_port: int = Field(alias="containerPort", ge=1, le=65535)
    host_port: int = Field(0, alias="hostPort", ge=0, le=65535)
    protocol: Literal["tcp", "udp"] = "tcp"
    # Marathon allows dashes ("http-api"); the variable is PORT_HTTP_API.
    name: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_-]*$")


class Volume(BaseModel):
    """A host path mounted into the container, read-only or read-write."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    container_path: str = Field(alias="containerPath", min_length=1)
    host_path: str = Field(alias="hostPath", min_length=1)
    mode: Literal["RO", "RW"] = "RW"

    @field_validator("container_path", "host_path")
    @classmethod
    def _absolute_and_normal(cls, v: str, info: ValidationInfo) -> str:
        limits.short_text(v)
        if not v.startswith("/"):
            raise ValueError("must be an absolute path")
        if ".." in v.split("/"):
            raise ValueError("must not contain '..'")
        normal = posixpath.normpath(v)
        # A container path reads back as posted, trailing slash and all (Chronos and Marathon
        # clients compare what they get with what they sent); host paths are compared with
        # the agents' allowed roots, so they stay normal.
        if info.field_name == "container_path" and v.endswith("/") and normal != "/":
            return normal + "/"
        return normal


class Parameter(BaseModel):
    """An extra ``docker run`` option, as ``--key=value``."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1)
    value: ShortText = ""

    @field_validator("key")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in SAFE_PARAMETERS | PRIVILEGED_PARAMETERS:
            allowed = ", ".join(sorted(SAFE_PARAMETERS | PRIVILEGED_PARAMETERS))
            raise ValueError(f"docker parameter {v!r} is not supported (supported: {allowed})")
        return v


class DockerSpec(BaseModel):
    """How to run a task in a container."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    image: NoNul = Field(min_length=1, max_length=500)
    entrypoint: list[str] | None = Field(None, description="Replaces the image's ENTRYPOINT.")
    user: ShortText | None = None
    network: Literal["BRIDGE", "HOST"] = "BRIDGE"
    port_mappings: list[PortMapping] = Field(default_factory=list, alias="portMappings")
    volumes: list[Volume] = Field(default_factory=list)
    labels: dict[NoNul, NoNul] = Field(default_factory=dict)
    force_pull: bool = Field(False, alias="forcePullImage")
    privileged: bool = False
    parameters: list[Parameter] = Field(default_factory=list)

    @field_validator("entrypoint")
    @classmethod
    def _entrypoint_bounded(cls, v: list[str] | None) -> list[str] | None:
        if v is not None:
            limits.argv(v)
        return v

    def needs_privilege(self) -> str | None:
        """What in this spec only a privileged agent runs, or None."""
        if self.privileged:
            return "privileged"
        for i, p in enumerate(self.parameters):
            if p.key in PRIVILEGED_PARAMETERS:
                return f"parameters[{i}] ({p.key})"
        return None
