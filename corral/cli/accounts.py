"""``corral user``, ``corral group``, ``corral token`` and ``corral whoami``: accounts, over the
API (users and groups are changed by admins; each person manages their own tokens). Roles are
checked by the master, which names the field it refuses."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from corral.cli.context import InvalidInput, connect
from corral.cli.output import Column, ago, console, fields, print_json, print_list, say, when

if TYPE_CHECKING:  # the models are loaded as a command runs: `corral --help` needs none
    from pydantic import BaseModel

    from corral.spec.accounts import CreatedToken, GroupView, Quota, Role, TokenView, UserView
    from corral.spec.share import UserShare

user_app = typer.Typer(help="List, add or remove users (admins change them).", no_args_is_help=True)
group_app = typer.Typer(
    help="List, add or remove groups and their members (admins change them).",
    no_args_is_help=True,
)
token_app = typer.Typer(
    help="Create, list or revoke tokens: your own (an admin: anyone's).", no_args_is_help=True
)

M = TypeVar("M", bound="BaseModel")
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
ROLES = "admin, user, viewer or agent"


def quota_text(quota: Quota) -> str:
    """A quota in a few words: "8 cpus, 16384 MiB, 10 tasks"; "" for none."""
    parts = [
        f"{value:g} {unit}"
        for value, unit in (
            (quota.cpus, "cpus"),
            (quota.mem, "MiB"),
            (quota.gpus, "gpus"),
            (quota.tasks, "tasks"),
        )
        if value is not None
    ]
    return ", ".join(parts)


USER_COLUMNS: list[Column[UserView]] = [
    Column("NAME", lambda u: u.name),
    Column("ROLE", lambda u: u.role.value),
    Column("GROUP", lambda u: u.group),
    Column("ALSO IN", lambda u: ", ".join(u.groups[1:]), wrap=True),
    Column("TOKENS", lambda u: str(u.tokens), justify="right"),
    Column("WEIGHT", lambda u: f"{u.weight:g}", justify="right"),
    Column("QUOTA", lambda u: quota_text(u.quota), wrap=True),
]
GROUP_COLUMNS: list[Column[GroupView]] = [
    Column("NAME", lambda g: g.name),
    Column("MEMBERS", lambda g: ", ".join(g.members), wrap=True),
    Column("WEIGHT", lambda g: f"{g.weight:g}", justify="right"),
    Column("QUOTA", lambda g: quota_text(g.quota), wrap=True),
]
SHARE_COLUMNS: list[Column[UserShare]] = [
    Column("USER", lambda u: u.user),
    Column("GROUP", lambda u: u.group),
    Column("WEIGHT", lambda u: f"{u.weight:g}", justify="right"),
    Column("QUOTA", lambda u: quota_text(u.quota), wrap=True),
    Column("GROUP QUOTA", lambda u: quota_text(u.group_quota), wrap=True),
    Column("CPU-H", lambda u: f"{u.usage.cpu_hours:.2f}", justify="right"),
    Column("USAGE", lambda u: f"{u.usage_share:.3f}", justify="right"),
    Column("RUNNING", lambda u: f"{u.running_share:.3f}", justify="right"),
    Column("SHARE", lambda u: f"{u.share:.3f}", justify="right"),
    Column("TASKS", lambda u: str(u.running), justify="right"),
    Column("WAITING", lambda u: str(u.waiting), justify="right"),
]
TOKEN_COLUMNS: list[Column[TokenView]] = [
    Column("ID", lambda t: t.id),
    Column("USER", lambda t: t.user),
    Column("ROLE", lambda t: t.role.value),
    Column("NAME", lambda t: t.name, wrap=True),
    Column("STATE", lambda t: t.state),
    Column("CREATED", lambda t: when(t.created_at)),
    Column("EXPIRES", lambda t: when(t.expires_at) or "never"),
    Column("LAST USED", lambda t: ago(t.last_used_at) or "never"),
]


def duration_of(text: str) -> float | None:
    """Seconds of a duration written ``90d``, ``12h``, ``30m``, ``2w`` or plain seconds (None:
    not one, or not positive)."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if found is None or float(found[1]) <= 0:
        return None
    return float(found[1]) * _UNITS[found[2]]


def seconds_of(text: str) -> float:
    """Seconds of an --expires lifetime (see ``duration_of``)."""
    seconds = duration_of(text)
    if seconds is None:
        raise InvalidInput(
            f"--expires: {text!r} is not a lifetime such as 90d, 12h, 30m, 2w or 3600"
        )
    return seconds


def role_of(text: str | None) -> Role | None:
    """The role a --role option names (None: not given)."""
    from corral.spec.accounts import Role

    if text is None:
        return None
    try:
        return Role(text)
    except ValueError:
        raise InvalidInput(f"--role: {text!r} is not a role ({ROLES})") from None


def _show_token(created: CreatedToken, as_json: bool) -> None:
    if as_json:
        print_json(created)
        return
    expires = when(created.expires_at) or "never"
    say(f"token {created.id} of {created.user} ({created.role.value}), expires: {expires}")
    # The secret alone on its line, so that scripts can take it with `tail -1`.
    console.print("the token (shown this once; keep it secret):", style="bold")
    typer.echo(created.token)


# --- users


@user_app.command("list")
def list_users(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Every user with their role, groups and working tokens."""
    with connect(ctx) as client:
        found = client.accounts.users()
    print_list(found, USER_COLUMNS, as_json, "users")


@user_app.command("add")
def add_user(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The user's name.", show_default=False)],
    role: Annotated[str, typer.Option(help=f"What they may do: {ROLES}.")] = "user",
    group: Annotated[
        str | None,
        typer.Option(help="Their primary group: their work counts to it [default: users]."),
    ] = None,
    also: Annotated[
        list[str] | None, typer.Option(help="Another group they belong to (repeatable).")
    ] = None,
    no_token: Annotated[
        bool, typer.Option("--no-token", help="Do not make them a first token.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Add a user and (unless --no-token) make them a first token, shown this once."""
    from pydantic import ValidationError

    from corral.spec.accounts import UserSpec

    fields_given = {"name": name, "role": role_of(role), "groups": also or []}
    try:
        spec = UserSpec.model_validate(fields_given | ({"group": group} if group else {}))
    except ValidationError as e:
        raise InvalidInput(str(e)) from None
    with connect(ctx) as client:
        view = client.accounts.add_user(spec)
        created = None if no_token else client.accounts.create_token(user=name, name="first")
    if as_json:
        print_json({"user": view, "token": created})
        return
    say(f"{view.name}: added ({view.role.value}, group {view.group})")
    if created is not None:
        _show_token(created, False)


@user_app.command("rm")
def remove_user(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The user's name.", show_default=False)],
) -> None:
    """Remove a user and their tokens; their work stays."""
    with connect(ctx) as client:
        client.accounts.remove_user(name)
    say(f"{name}: removed")


# --- fair-share settings

QuotaOption = Annotated[str | None, typer.Option(show_default=False)]


def share_fields(
    weight: str | None,
    cpus: str | None,
    mem: str | None,
    gpus: str | None,
    tasks: str | None,
) -> dict[str, str | None]:
    """The fields of a change of fair-share settings given on the command line ("none" lifts
    a quota, and puts the weight back to 1)."""
    given = {
        "weight": weight,
        "quota_cpus": cpus,
        "quota_mem": mem,
        "quota_gpus": gpus,
        "quota_tasks": tasks,
    }
    return {
        name: None if value.strip().lower() == "none" else value
        for name, value in given.items()
        if value is not None
    }


def _validated(model: type[M], values: dict[str, object]) -> M:
    from pydantic import ValidationError

    try:
        return model.model_validate(values)
    except ValidationError as e:
        why = "; ".join(
            f"--{str(err['loc'][0]).replace('_', '-')}: {err['msg']}" if err["loc"] else err["msg"]
            for err in e.errors()
        )
        raise InvalidInput(why) from None


WeightOption = Annotated[
    str | None,
    typer.Option(help="Fair-share weight, 0.001 to 1000 (none: back to 1).", show_default=False),
]
CpusQuota = Annotated[
    str | None, typer.Option("--quota-cpus", help="Cap on cpus held at once (none: no cap).")
]
MemQuota = Annotated[
    str | None, typer.Option("--quota-mem", help="Cap on MiB of memory held (none: no cap).")
]
GpusQuota = Annotated[
    str | None, typer.Option("--quota-gpus", help="Cap on GPUs held (none: no cap).")
]
TasksQuota = Annotated[
    str | None,
    typer.Option("--quota-tasks", help="Cap on tasks placed or running (none: no cap)."),
]


@user_app.command("set")
def set_user(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The user's name.", show_default=False)],
    role: Annotated[str | None, typer.Option(help=f"{ROLES}.", show_default=False)] = None,
    weight: WeightOption = None,
    quota_cpus: CpusQuota = None,
    quota_mem: MemQuota = None,
    quota_gpus: GpusQuota = None,
    quota_tasks: TasksQuota = None,
    as_json: JsonOption = False,
) -> None:
    """Change a user's role, fair-share weight or quotas (admins); what is not given stays."""
    from corral.spec.accounts import UserChange

    values: dict[str, object] = dict(
        share_fields(weight, quota_cpus, quota_mem, quota_gpus, quota_tasks)
    )
    if role is not None:
        values["role"] = role_of(role)
    if not values:
        raise InvalidInput("nothing to change: give --role, --weight or a --quota-… option")
    change = _validated(UserChange, values)
    with connect(ctx) as client:
        view = client.accounts.change_user(name, change)
    if as_json:
        print_json(view)
        return
    quota = quota_text(view.quota) or "none"
    say(f"{view.name}: {view.role.value}, weight {view.weight:g}, quota {quota}")


# --- groups


@group_app.command("list")
def list_groups(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Every group with its members."""
    with connect(ctx) as client:
        found = client.accounts.groups()
    print_list(found, GROUP_COLUMNS, as_json, "groups")


GroupArgument = Annotated[str, typer.Argument(help="The group's name.", show_default=False)]


@group_app.command("add")
def add_group(ctx: typer.Context, name: GroupArgument) -> None:
    """Add a group."""
    with connect(ctx) as client:
        client.accounts.add_group(name)
    say(f"{name}: added")


@group_app.command("set")
def set_group(
    ctx: typer.Context,
    name: GroupArgument,
    weight: WeightOption = None,
    quota_cpus: CpusQuota = None,
    quota_mem: MemQuota = None,
    quota_gpus: GpusQuota = None,
    quota_tasks: TasksQuota = None,
    as_json: JsonOption = False,
) -> None:
    """Change a group's weight (it multiplies its users') or quotas (on its users' work
    together), admins only; what is not given stays."""
    from corral.spec.accounts import ShareSettings

    values = share_fields(weight, quota_cpus, quota_mem, quota_gpus, quota_tasks)
    if not values:
        raise InvalidInput("nothing to change: give --weight or a --quota-… option")
    change = _validated(ShareSettings, dict(values))
    with connect(ctx) as client:
        view = client.accounts.change_group(name, change)
    if as_json:
        print_json(view)
        return
    say(f"{view.name}: weight {view.weight:g}, quota {quota_text(view.quota) or 'none'}")


@group_app.command("rm")
def remove_group(ctx: typer.Context, name: GroupArgument) -> None:
    """Remove a group (not while it is someone's primary group)."""
    with connect(ctx) as client:
        client.accounts.remove_group(name)
    say(f"{name}: removed")


@group_app.command("members")
def members(
    ctx: typer.Context,
    name: GroupArgument,
    add: Annotated[list[str] | None, typer.Option(help="A user to add (repeatable).")] = None,
    remove: Annotated[
        list[str] | None, typer.Option(help="A user to take out (repeatable).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List the members of a group; with --add or --remove, change them first."""
    with connect(ctx) as client:
        view = client.accounts.add_members(name, add) if add else client.accounts.group(name)
        for user in remove or []:
            view = client.accounts.remove_member(name, user)
    if as_json:
        print_json(view)
    elif not view.members:
        console.print("no members", style="dim")
    else:
        typer.echo("\n".join(view.members))


# --- tokens


@token_app.command("list")
def list_tokens(
    ctx: typer.Context,
    user: Annotated[str | None, typer.Option(help="Only this user's (admins).")] = None,
    all: Annotated[bool, typer.Option("--all", help="Expired and revoked ones too.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Your tokens (an admin: everyone's), newest first; never their secrets."""
    with connect(ctx) as client:
        found = client.accounts.tokens(user, include_ended=all)
    print_list(found, TOKEN_COLUMNS, as_json, "tokens")


@token_app.command("create")
def create_token(
    ctx: typer.Context,
    user: Annotated[str | None, typer.Option(help="Whose (admins): yours if not given.")] = None,
    role: Annotated[
        str | None,
        typer.Option(help=f"{ROLES}: the user's own or narrower (agent: for an agent)."),
    ] = None,
    name: Annotated[str, typer.Option(help="What it is for.")] = "",
    expires: Annotated[
        str | None, typer.Option(help="Lifetime: 90d, 12h, 30m, 2w or seconds [never].")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a token; it is shown this once and stored only hashed."""
    lifetime = None if expires is None else seconds_of(expires)
    with connect(ctx) as client:
        created = client.accounts.create_token(user, role_of(role), name, lifetime)
    _show_token(created, as_json)


@token_app.command("revoke")
def revoke_token(
    ctx: typer.Context,
    token_id: Annotated[
        str, typer.Argument(help="The token's id (corral token list).", show_default=False)
    ],
) -> None:
    """Revoke a token: it stops working at once."""
    with connect(ctx) as client:
        client.accounts.revoke_token(token_id)
    say(f"{token_id}: revoked")


def share(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Fair share, as Slurm's sshare: each user's weight, quotas, decayed usage (cpu-hours,
    and the share of the cluster it amounts to), running share, the share fair share ranks
    by (next in line first), running and waiting tasks."""
    with connect(ctx) as client:
        report = client.accounts.share()
    if as_json:
        print_json(report)
        return
    cap = report.capacity
    say(
        f"cluster: {cap.cpus:g} cpus, {cap.mem} MiB, {cap.gpus} gpus; "
        f"usage half-life {report.half_life / 3600:g} h"
    )
    print_list(report.users, SHARE_COLUMNS, False, "users")


def whoami(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Who your token belongs to, its role and your groups."""
    with connect(ctx) as client:
        info = client.info()
    if as_json:
        print_json(info)
        return
    console.print(
        fields([("user", info.user), ("role", info.role), ("groups", ", ".join(info.groups))])
    )


def register(app: typer.Typer) -> None:
    """Add ``user``, ``group``, ``token`` and ``whoami`` to the app."""
    app.add_typer(user_app, name="user")
    app.add_typer(group_app, name="group")
    app.add_typer(token_app, name="token")
    app.command("whoami")(whoami)
    app.command("share")(share)
