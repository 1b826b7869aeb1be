"""Who may call the API."""

import base64
from pathlib import Path

from fastapi.testclient import TestClient

from corral.master.master import Master


def test_every_api_call_needs_a_token(anonymous: TestClient) -> None:
    for path in ("/api/v1/jobs", "/api/v1/tasks", "/api/v1/agents", "/api/v1/info"):
        r = anonymous.get(path)
        assert r.status_code == 401, path
        assert "token" in r.json()["detail"]
        assert 'Basic realm="corral"' in r.headers["www-authenticate"]


def test_health_ping_and_metrics_need_no_token(anonymous: TestClient) -> None:
    assert anonymous.get("/health").json() == {"status": "ok"}
    assert anonymous.get("/ping").text == "pong"
    metrics = anonymous.get("/metrics")
    assert metrics.status_code == 200
    assert "# HELP corral_tasks" in metrics.text


def test_a_wrong_token_is_refused(anonymous: TestClient) -> None:
    r = anonymous.get("/api/v1/jobs", headers={"Authorization": "Bearer not-the-token"})
    assert r.status_code == 401


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
    assert master.store.token_user(first) == ("admin", "admin")
