"""Who may call the API."""

import base64
from pathlib import Path

from fastapi.testclient import TestClient

from corral.master.accounts import Caller
from corral.master.master import Master
from corral.spec.accounts import Role


def test_every_api_call_needs_a_token(anonymous: TestClient) -> None:
    for path in ("/api/v1/jobs", "/api/v1/tasks", "/api/v1/agents", "/api/v1/info"):
        r = anonymous.get(path)
        assert r.status_code == 401, path
        assert "token" in r.json()["detail"]
        assert 'Basic realm="corral"' in r.headers["www-authenticate"]


def test_health_and_ping_need_no_token_and_metrics_needs_one(
    anonymous: TestClient, token: str
) -> None:
    assert anonymous.get("/health").json()["status"] == "ok"
    assert anonymous.get("/ping").text == "pong"
    assert anonymous.get("/metrics").status_code == 401
    metrics = anonymous.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert metrics.status_code == 200
    assert "# HELP corral_tasks" in metrics.text


def test_a_wrong_token_is_refused(anonymous: TestClient) -> None:
    r = anonymous.get("/api/v1/jobs", headers={"Authorization": "Bearer not-the-token"})
    assert r.status_code == 401
    assert r.json()["detail"] == "a valid token is required: not a token of this cluster"


def test_basic_auth_with_the_token_as_password_is_accepted(
    anonymous: TestClient, token: str
) -> None:
    creds = base64.b64encode(f"anyone:{token}".encode()).decode()
    r = anonymous.get("/api/v1/info", headers={"Authorization": f"Basic {creds}"})
    assert r.status_code == 200
    assert r.json()["user"] == "admin"


def test_the_admin_token_file_is_private_and_reused(master: Master, tmp_path: Path) -> None:
    path = tmp_path / "admin.token"
    first = master.ensure_admin_token(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert master.ensure_admin_token(path) == first
    caller = master.accounts.authenticate(first)
    assert isinstance(caller, Caller) and (caller.name, caller.role) == ("admin", Role.ADMIN)


def test_a_revoked_admin_token_file_gets_a_new_token(master: Master, tmp_path: Path) -> None:
    path = tmp_path / "admin.token"
    first = master.ensure_admin_token(path)
    caller = master.accounts.authenticate(first)
    assert isinstance(caller, Caller) and caller.token_id is not None
    master.accounts.revoke_token(caller.token_id)
    second = master.ensure_admin_token(path)
    assert second != first and path.read_text().strip() == second
    assert isinstance(master.accounts.authenticate(second), Caller)
