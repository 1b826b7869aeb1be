"""Accounts from the command line against a real ``corral up``: its local agent joins with an
agent token, an admin adds a user who works with their own token, makes and revokes tokens, and
manages groups; a user may not."""

from __future__ import annotations

import json
import secrets

import pytest
from typer.testing import CliRunner, Result

from corral.cli.main import app
from corral.client import Client
from tests.cli.harness import Corral, Server, ok

pytestmark = pytest.mark.integration


def as_user(server: Server, token: str, *args: str) -> Result:
    """``corral ARGS...`` with someone else's token."""
    runner = CliRunner(env={"CORRAL_URL": server.url, "CORRAL_TOKEN": token})
    return runner.invoke(app, list(args))


def test_corral_ups_agent_joins_with_an_agent_token_of_its_own(server: Server) -> None:
    agent_token = (server.data / "agent.token").read_text().strip()
    assert agent_token and agent_token != server.token
    with Client(server.url, server.token) as admin:
        assert [a.connected for a in admin.agents()] == [True]
        used = {t.name: t for t in admin.accounts.tokens(user="admin")}
    local = used["local agent of corral up"]
    assert local.role.value == "agent" and local.last_used_at is not None
    with Client(server.url, agent_token) as agent:
        with pytest.raises(Exception, match="agent token may not read"):
            agent.jobs()


def test_an_admin_adds_a_user_who_works_with_their_own_token(
    corral: Corral, server: Server
) -> None:
    name = f"u{secrets.token_hex(3)}"
    added = ok(corral("user", "add", name))
    assert added.startswith(f"{name}: added (user, group users)\n")
    token = added.splitlines()[-1]  # the secret alone on the last line
    assert ok(as_user(server, token, "whoami")).split() == [
        "user",
        name,
        "role",
        "user",
        "groups",
        "users",
    ]
    ok(as_user(server, token, "run", "--name", f"{name}-job", "--", "true"))
    [job] = [j for j in json.loads(ok(corral("jobs", "--json"))) if j["name"] == f"{name}-job"]
    assert (job["owner"], job["group"]) == (name, "users")
    names = [u["name"] for u in json.loads(ok(corral("user", "list", "--json")))]
    assert name in names and "admin" in names


def test_a_user_makes_lists_and_revokes_their_own_tokens(corral: Corral, server: Server) -> None:
    name = f"u{secrets.token_hex(3)}"
    token = ok(corral("user", "add", name)).splitlines()[-1]
    made = json.loads(ok(as_user(server, token, "token", "create", "--name", "laptop",
                                 "--expires", "1d", "--json")))  # fmt: skip
    assert (made["user"], made["name"], made["expires_at"] is not None) == (name, "laptop", True)
    listed = json.loads(ok(as_user(server, token, "token", "list", "--json")))
    assert {t["user"] for t in listed} == {name} and len(listed) == 2
    assert ok(as_user(server, token, "token", "revoke", made["id"])) == f"{made['id']}: revoked\n"
    assert as_user(server, made["token"], "whoami").exit_code == 1
    refused = as_user(server, token, "user", "add", f"{name}x")
    assert refused.exit_code == 1 and "only an admin may" in refused.stderr


def test_groups_are_made_and_their_members_changed(corral: Corral) -> None:
    group, name = f"g{secrets.token_hex(3)}", f"u{secrets.token_hex(3)}"
    ok(corral("user", "add", name, "--no-token"))
    assert ok(corral("group", "add", group)) == f"{group}: added\n"
    assert ok(corral("group", "members", group, "--add", name)) == f"{name}\n"
    assert ok(corral("group", "members", group, "--remove", name)).strip() == "no members"
    bad = corral("user", "add", f"{name}x", "--group", "no-such-group")
    assert bad.exit_code == 2 and "group" in bad.stderr
    assert ok(corral("group", "rm", group)) == f"{group}: removed\n"


def test_an_admin_sets_weights_roles_and_quotas_and_corral_share_shows_them(
    corral: Corral, server: Server
) -> None:
    group, name = f"g{secrets.token_hex(3)}", f"u{secrets.token_hex(3)}"
    ok(corral("group", "add", group))
    token = ok(corral("user", "add", name, "--group", group)).splitlines()[-1]
    said = ok(corral("user", "set", name, "--weight", "2", "--quota-cpus", "8",
                     "--quota-tasks", "4", "--role", "viewer"))  # fmt: skip
    assert said == f"{name}: viewer, weight 2, quota 8 cpus, 4 tasks\n"
    said = ok(corral("user", "set", name, "--quota-cpus", "none", "--role", "user"))
    assert said == f"{name}: user, weight 2, quota 4 tasks\n"
    assert ok(corral("group", "set", group, "--weight", "1.5", "--quota-mem", "4096")) == (
        f"{group}: weight 1.5, quota 4096 MiB\n"
    )
    ok(as_user(server, token, "run", "--name", f"{name}-job", "--cpus", "0.1", "--", "true"))
    report = json.loads(ok(as_user(server, token, "share", "--json")))
    (line,) = [u for u in report["users"] if u["user"] == name]
    assert (line["group"], line["weight"], line["quota"]["tasks"]) == (group, 3.0, 4)
    assert line["group_quota"]["mem"] == 4096
    table = ok(corral("share"))
    assert table.startswith("cluster: ") and "usage half-life 24 h" in table
    assert name in table


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (("--weight", "0"), "--weight"),
        (("--weight", "heavy"), "--weight"),
        (("--quota-cpus", "-1"), "--quota-cpus"),
        (("--quota-mem", "lots"), "--quota-mem"),
        (("--role", "emperor"), "--role"),
        ((), "nothing to change"),
    ],
)
def test_bad_settings_are_refused_naming_the_option(
    corral: Corral, args: tuple[str, ...], option: str
) -> None:
    refused = corral("user", "set", "admin", *args)
    assert refused.exit_code != 0 and option in refused.stderr, refused.stderr


def test_a_user_may_not_change_weights(corral: Corral, server: Server) -> None:
    name = f"u{secrets.token_hex(3)}"
    token = ok(corral("user", "add", name)).splitlines()[-1]
    refused = as_user(server, token, "user", "set", name, "--weight", "100")
    assert refused.exit_code == 1 and "only an admin may" in refused.stderr
