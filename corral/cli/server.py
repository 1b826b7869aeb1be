"""Server commands: ``corral up`` (master and agent in one process), ``corral master`` and
``corral agent``.

Only their options live here; what they run is in ``serving`` (master, up) and
``agent_serving`` (agent), imported when one starts, so a client command (``corral jobs``) loads
no server code (no web framework, store or executors) and an agent no master code.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

import typer

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


AllowVolumeOption = Annotated[
    list[str] | None,
    typer.Option(help="Host path under which containers may mount volumes (repeatable)."),
]
AllowPrivilegedOption = Annotated[
    bool, typer.Option("--allow-privileged", help="Admin only: run privileged containers.")
]
GpusOption = Annotated[
    int | None,
    typer.Option(
        min=0,
        help="Offer N GPUs declared by hand (indices 0..N-1; 0: none) "
        "[default: the NVIDIA GPUs NVML finds].",
    ),
]
PrivateReadsOption = Annotated[
    bool,
    typer.Option(
        "--private-reads",
        help="Users read only their own work (admins and viewers: everyone's). "
        "Without it, as in Slurm, everyone signed in reads all work.",
    ),
]
DbOption = Annotated[
    str | None,
    typer.Option(
        envvar="CORRAL_DB",
        help="The state store: sqlite:///PATH or postgresql://USER:PASSWORD@HOST/DATABASE "
        "(the environment keeps a password out of ps) [default: state.db in the data dir]",
    ),
]
HalfLifeOption = Annotated[
    str,
    typer.Option(
        "--fairshare-half-life",
        help="After how long past usage counts half in fair share: 1d, 12h, 30m, 2w or "
        "seconds. A user who ran all of yesterday goes behind today, and is not shut out.",
    ),
]
PreemptionOption = Annotated[
    bool,
    typer.Option(
        "--preemption",
        help="A user below their fair share whose task waited --preempt-after may evict "
        "tasks of users over theirs (batch tasks; a service's if it is preemptible). "
        "Evicted tasks wait again, not counted as failures.",
    ),
]
PreemptAfterOption = Annotated[
    str,
    typer.Option(
        "--preempt-after",
        help="How long a task waits before it may preempt (with --preemption): 60s, 5m, "
        "1h or seconds.",
    ),
]
MaxOutputOption = Annotated[
    int,
    typer.Option(
        min=1, help="MiB of stdout + stderr a task may write; a task over it is stopped, FAILED."
    ),
]


def default_data_dir() -> Path:
    """``$CORRAL_DATA``, else ``./.corral``."""
    return Path(os.environ.get("CORRAL_DATA", ".corral"))


def _parse_range(value: str) -> tuple[int, int]:
    low, sep, high = value.partition("-")
    if not sep or not low.isdigit() or not high.isdigit() or int(low) > int(high):
        raise typer.BadParameter(f"{value!r} is not a range LOW-HIGH", param_hint="--ports")
    return int(low), int(high)


def _allowed_paths(paths: list[str] | None) -> list[str]:
    out = []
    for p in paths or []:
        if not p.startswith("/"):
            raise typer.BadParameter(f"{p!r} is not an absolute path", param_hint="--allow-volume")
        out.append(os.path.normpath(p))
    return out


def _parse_attrs(attrs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for a in attrs:
        key, sep, value = a.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{a!r} is not key=value", param_hint="--attr")
        out[key] = value
    return out


def _split_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise typer.BadParameter(f"{listen!r} is not HOST:PORT", param_hint="--listen")
    return host.strip("[]") or "127.0.0.1", int(port)


def _half_life(text: str) -> float:
    from corral.cli.accounts import duration_of

    seconds = duration_of(text)
    if seconds is None:
        raise typer.BadParameter(
            f"{text!r} is not a duration such as 1d, 12h, 30m, 2w or 3600",
            param_hint="--fairshare-half-life",
        )
    return seconds


def _preempt_after(enabled: bool, text: str) -> float | None:
    """The threshold of preemption in seconds, or None when it is off."""
    from corral.cli.accounts import duration_of

    after = duration_of(text)
    if after is None:
        raise typer.BadParameter(
            f"{text!r} is not a duration such as 1d, 12h, 30m, 2w or 3600",
            param_hint="--preempt-after",
        )
    return after if enabled else None


def up(
    data: Annotated[
        Path | None, typer.Option(help="Data dir [default: $CORRAL_DATA or ./.corral]")
    ] = None,
    port: Annotated[int, typer.Option(help="Port of the API and dashboard.")] = 8080,
    db: DbOption = None,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="Accept calls without a token.")
    ] = False,
    private_reads: PrivateReadsOption = False,
    cpus: Annotated[float | None, typer.Option(help="CPUs the local agent offers.")] = None,
    mem: Annotated[int | None, typer.Option(help="MiB the local agent offers.")] = None,
    gpus: GpusOption = None,
    allow_volume: AllowVolumeOption = None,
    allow_privileged: AllowPrivilegedOption = False,
    max_output: MaxOutputOption = 1024,
    fairshare_half_life: HalfLifeOption = "1d",
    preemption: PreemptionOption = False,
    preempt_after: PreemptAfterOption = "60s",
) -> None:
    """Start a whole cluster here: a master and one local agent, state in the data dir."""
    half_life = _half_life(fairshare_half_life)
    threshold = _preempt_after(preemption, preempt_after)
    from corral.cli import serving

    serving.up(
        data or default_data_dir(),
        port,
        serving.Access(not no_auth, private_reads),
        (cpus, mem, gpus),
        _allowed_paths(allow_volume),
        allow_privileged,
        max_output * 2**20,
        db,
        half_life,
        threshold,
    )


def master(
    db: DbOption = None,
    listen: Annotated[str, typer.Option(help="HOST:PORT to serve on.")] = "127.0.0.1:8080",
    data: Annotated[Path | None, typer.Option(help="Where admin.token is kept.")] = None,
    no_auth: Annotated[bool, typer.Option("--no-auth", help="Loopback only.")] = False,
    private_reads: PrivateReadsOption = False,
    lost_after: Annotated[
        float,
        typer.Option(
            help="Seconds of silence before an agent is LOST and its tasks are replaced. "
            "8 keeps a killed node's services running again elsewhere within 10 s."
        ),
    ] = 8.0,
    fairshare_half_life: HalfLifeOption = "1d",
    preemption: PreemptionOption = False,
    preempt_after: PreemptAfterOption = "60s",
    advertise: Annotated[
        str | None,
        typer.Option(
            help="The URL other masters, agents and clients reach this master at "
            "[default: http://HOST:PORT of --listen].",
        ),
    ] = None,
    lease: Annotated[
        float | None,
        typer.Option(
            min=0.3,
            help="Seconds a leader's lease lasts; it renews it every third of that, and "
            "another master takes over within about that long after it dies "
            "[default: 2 on PostgreSQL, 10 on SQLite].",
        ),
    ] = None,
) -> None:
    """Run a master: API, scheduler and state store, for agents to dial in. Several masters
    may share one PostgreSQL store: one leads, the others hand calls to it."""
    host, port = _split_listen(listen)
    half_life = _half_life(fairshare_half_life)
    threshold = _preempt_after(preemption, preempt_after)
    if no_auth and host not in LOOPBACK:
        raise typer.BadParameter(
            "--no-auth is only allowed on a loopback address", param_hint="--no-auth"
        )
    url = _advertised(advertise, host, port)
    from corral.cli import serving

    access = serving.Access(not no_auth, private_reads)
    serving.master(
        db,
        (host, port, url),
        data or default_data_dir(),
        access,
        lost_after,
        lease,
        half_life,
        threshold,
    )


def _advertised(advertise: str | None, host: str, port: int) -> str:
    if advertise is None:
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"
    if not advertise.startswith(("http://", "https://")) or "," in advertise:
        raise typer.BadParameter(
            f"{advertise!r} is not a URL: give http(s)://HOST:PORT", param_hint="--advertise"
        )
    return advertise.rstrip("/")


def _master_urls(values: list[str]) -> list[str]:
    urls = [u.strip().rstrip("/") for v in values for u in v.split(",") if u.strip()]
    for u in urls:
        if not u.startswith(("http://", "https://")):
            raise typer.BadParameter(
                f"{u!r} is not a URL: give http(s)://HOST:PORT", param_hint="--master"
            )
    if not urls:
        raise typer.BadParameter("give the URL of a master", param_hint="--master")
    return urls


def agent(
    master_url: Annotated[
        list[str],
        typer.Option(
            "--master",
            help="URL of a master; several masters: repeat it, or separate the URLs by commas. "
            "The agent dials them in turn and follows the leader.",
        ),
    ],
    token: Annotated[
        str | None,
        typer.Option(
            envvar="CORRAL_TOKEN",
            help="An agent token (corral token create --role agent): it lets the agent join "
            "and nothing else.",
        ),
    ] = None,
    cpus: Annotated[float | None, typer.Option(help="CPUs to offer [default: all].")] = None,
    mem: Annotated[int | None, typer.Option(help="MiB of memory to offer [default: all].")] = None,
    disk: Annotated[int | None, typer.Option(help="MiB of disk to offer [default: free].")] = None,
    gpus: GpusOption = None,
    attr: Annotated[
        list[str] | None, typer.Option(help="Attribute key=value (repeatable).")
    ] = None,
    data: Annotated[Path, typer.Option(help="Where the agent keeps sandboxes and journal.")] = Path(
        ".corral-agent"
    ),
    hostname: Annotated[
        str | None, typer.Option(help="Name to report [default: this host's].")
    ] = None,
    allow_volume: AllowVolumeOption = None,
    allow_privileged: AllowPrivilegedOption = False,
    ports: Annotated[
        str, typer.Option(help="Host ports it gives to tasks, LOW-HIGH.")
    ] = "31000-32000",
    keep_containers: Annotated[
        bool, typer.Option("--keep-containers", help="Keep ended containers, for debugging.")
    ] = False,
    keep_sandboxes: Annotated[
        float, typer.Option(min=0, help="Hours a finished task's sandbox is kept.")
    ] = 168.0,
    max_output: MaxOutputOption = 1024,
) -> None:
    """Run an agent: offer this node's resources to a master and run its tasks."""
    from corral.cli import agent_serving

    agent_serving.agent(
        _master_urls(master_url),
        token,
        (cpus, mem, disk, gpus),
        data,
        hostname,
        _parse_attrs(attr or []),
        _allowed_paths(allow_volume),
        allow_privileged,
        _parse_range(ports),
        keep_containers,
        keep_sandboxes * 3600,
        max_output * 2**20,
    )


def register(app: typer.Typer) -> None:
    """Add the server commands to the ``corral`` app."""
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    app.command()(up)
    app.command()(master)
    app.command()(agent)
