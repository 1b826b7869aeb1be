"""A launch that Docker refuses fails with Docker's reason, but without the agent's own paths
(its data dir, the task's sandbox, where volumes are pinned): users see the reason, not the
layout of the agent's disk."""

from __future__ import annotations

import pytest

from tests.agent.test_docker_executor import Agent, agent, image, launch_error

__all__ = ["agent", "image"]


def test_a_mount_docker_refuses_is_explained_without_the_agents_paths(
    agent: Agent, tmp_path_factory: pytest.TempPathFactory
) -> None:
    shared = tmp_path_factory.mktemp("shared")
    (shared / "file").write_text("a file, mounted where the image has a directory\n")
    volume = {"containerPath": "/bin", "hostPath": str(shared / "file"), "mode": "RO"}
    staging = agent.data.parent / f"{agent.id}-pins"
    reason = launch_error(
        agent,
        agent.launch({"volumes": [volume]}, command=["true"]),
        allowed_volumes=[shared],
        data_dir=agent.data,
        staging_dir=staging,
    )
    assert reason.startswith("cannot start the container: "), reason
    assert "/bin" in reason  # Docker's own words stay
    for private in (str(agent.data), str(staging), "/run/corral"):
        assert private not in reason, reason
