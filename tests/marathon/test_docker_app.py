"""Acceptance: a Docker web server posted as a Marathon app, with a BRIDGE port mapping and an
HTTP health check, answers on the host port the agent gave it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.cluster import Cluster
from tests.support.images import ensure_test_image

pytestmark = pytest.mark.integration


def test_a_bridge_container_app_answers_http_on_its_assigned_host_port(cluster: Cluster) -> None:
    image = ensure_test_image()
    cluster.add_agent("d1")
    app = {
        "id": "/web/httpd",
        "cmd": "mkdir -p /tmp/www && echo hello > /tmp/www/index.html && "
        "exec httpd -f -p 8080 -h /tmp/www",
        "instances": 1,
        "cpus": 0.1,
        "mem": 64,
        # httpd, the container's PID 1, ignores SIGTERM: the delete that ends the test needs
        # not wait out the default 10 s grace for the SIGKILL.
        "taskKillGracePeriodSeconds": 1,
        "container": {
            "type": "DOCKER",
            "docker": {
                "image": image,
                "network": "BRIDGE",
                "portMappings": [{"containerPort": 8080, "hostPort": 0, "protocol": "tcp"}],
            },
        },
        "healthChecks": [
            {
                "protocol": "HTTP",
                "path": "/index.html",
                "portIndex": 0,
                "gracePeriodSeconds": 10,
                "intervalSeconds": 1,
                "timeoutSeconds": 1,
                "delaySeconds": 0,
            }
        ],
    }
    auth = ("admin", cluster.token)
    with httpx.Client(base_url=cluster.url, auth=auth, timeout=30) as http:
        created = http.post("/v2/apps", json=app)
        assert created.status_code == 201, created.text

        def healthy() -> dict[str, Any] | None:
            found = http.get("/v2/apps/web/httpd").json()["app"]
            tasks = found["tasks"]
            if found["tasksHealthy"] == 1 and tasks and tasks[0]["ports"]:
                return dict(tasks[0])
            return None

        task = cluster.wait_until(healthy, 60, "a healthy container")
        (port,) = task["ports"]
        assert task["host"] == "d1" and port > 0
        # Healthy means the agent already had an answer on this port; ask it ourselves too.
        assert httpx.get(f"http://127.0.0.1:{port}/index.html", timeout=5).text == "hello\n"
        assert http.delete("/v2/apps/web/httpd").status_code == 200
        cluster.wait_until(
            lambda: http.get("/v2/tasks").json()["tasks"] == [], 60, "the container stopped"
        )
