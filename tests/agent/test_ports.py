"""The host port pool and the port variables, without starting any task."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from corral.agent.executors.base import LaunchError
from corral.agent.executors.docker_config import host_ports_wanted, task_env
from corral.agent.ports import PortPool, from_mappings, port_env
from corral.spec.docker import DockerSpec, PortMapping
from corral.spec.protocol import HostPort, TaskLaunch
from tests.agent.helpers import free_range


def asked(*ports: int) -> list[HostPort]:
    """Host ports asked for: 0 for any, others exactly."""
    return [HostPort(port=port) for port in ports]


def test_ports_asked_as_0_come_from_the_range_and_given_ones_are_kept() -> None:
    first, last = free_range(4)
    pool = PortPool(first, last - 1)
    assert pool.reserve("t-1", asked(0, last, 0)) == [first, last, first + 1]
    assert pool.reserve("t-2", asked(0)) == [first + 2]
    assert pool.held("t-1") == [first, last, first + 1]


def test_a_port_held_by_a_task_is_not_given_again_until_it_is_released() -> None:
    first, last = free_range(2)
    pool = PortPool(first, last)
    pool.reserve("t-1", asked(0, 0))
    with pytest.raises(LaunchError, match=f"no free host port in {first}-{last}"):
        pool.reserve("t-2", asked(0))
    pool.release("t-1")
    assert pool.held("t-1") == []
    assert pool.reserve("t-2", asked(0)) == [first]


def test_a_port_bound_by_another_program_is_skipped() -> None:
    first, last = free_range(2)
    with socket.socket() as other:
        other.bind(("", first))
        other.listen()
        assert PortPool(first, last).reserve("t-1", asked(0)) == [last]


def test_ports_of_a_recovered_task_are_held() -> None:
    first, last = free_range(2)
    pool = PortPool(first, last)
    pool.adopt("t-1", [first])
    assert pool.reserve("t-2", asked(0)) == [last]


def test_a_port_range_outside_1_to_65535_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="port range 0-10"):
        PortPool(0, 10)
    with pytest.raises(ValueError, match="port range 20-10"):
        PortPool(20, 10)


def test_a_fixed_port_another_program_listens_on_fails_and_nothing_is_held() -> None:
    first, last = free_range(3)
    pool = PortPool(first, last - 1)
    with socket.socket() as other:
        other.bind(("", last))
        other.listen()
        with pytest.raises(LaunchError, match=f"^host port {last} is in use$"):
            pool.reserve("t-1", asked(0, last))
    assert pool.held("t-1") == []
    assert pool.reserve("t-2", asked(0)) == [first]  # the failed try took none


def test_a_fixed_port_another_task_holds_fails_naming_that_task() -> None:
    first, last = free_range(2)
    pool = PortPool(first, last)
    pool.reserve("t-1", asked(0))
    with pytest.raises(LaunchError, match=f"^host port {first} is in use \\(by task t-1\\)$"):
        pool.reserve("t-2", asked(first))


def test_a_fixed_port_asked_twice_by_one_task_fails() -> None:
    first, last = free_range(2)
    with pytest.raises(LaunchError, match=f"host port {last} is asked for twice"):
        PortPool(first, last).reserve("t-1", asked(last, last))


def test_a_port_asked_as_0_is_never_one_the_same_task_asks_for_exactly() -> None:
    first, last = free_range(2)
    assert PortPool(first, last).reserve("t-1", asked(0, first)) == [last, first]


def test_a_tcp_port_in_time_wait_is_free_for_a_fixed_port() -> None:
    first, last = free_range(1)
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", first))
        server.listen()
        with socket.create_connection(("127.0.0.1", first)):
            accepted, _ = server.accept()
            accepted.close()  # the server side closes first: its end lingers in TIME_WAIT
    assert PortPool(first, last).reserve("t-1", asked(first)) == [first]


def test_the_port_variables_name_each_port_and_list_them_all() -> None:
    wanted = [HostPort(name="web"), HostPort(port=8080), HostPort(name="Admin_2")]
    assert port_env(wanted, [31001, 8080, 31002]) == {
        "PORT0": "31001",
        "PORT_WEB": "31001",
        "PORT1": "8080",
        "PORT2": "31002",
        "PORT_ADMIN_2": "31002",
        "PORT": "31001",
        "PORTS": "31001,8080,31002",
    }
    assert port_env([], []) == {}


# --- which ports a container asks for


def docker_launch(docker: dict[str, Any], **fields: Any) -> TaskLaunch:
    """A docker launch of task ``t-1``."""
    base: dict[str, Any] = {"task_id": "t-1", "job": "tests", "cpus": 0.5, "mem": 64}
    section = {"image": "corral-test/busybox:latest", **docker}
    return TaskLaunch.model_validate({**base, "driver": "docker", "docker": section, **fields})


def spec_of(task: TaskLaunch) -> DockerSpec:
    """The docker section of ``task``."""
    assert task.docker is not None
    return task.docker


def test_a_bridge_container_asks_for_the_host_ports_of_its_mappings() -> None:
    mappings = [{"containerPort": 80, "hostPort": 0, "name": "http"}, {"containerPort": 90}]
    task = docker_launch({"portMappings": mappings})
    expected = from_mappings([PortMapping.model_validate(m) for m in mappings])
    assert host_ports_wanted(task, spec_of(task)) == expected
    assert expected[0] == HostPort(port=0, name="http")


def test_a_bridge_container_with_host_ports_is_refused() -> None:
    task = docker_launch({}, ports=[{"port": 0}])
    with pytest.raises(LaunchError, match="BRIDGE container publishes ports with docker"):
        host_ports_wanted(task, spec_of(task))


def test_a_host_network_container_gets_the_launchs_ports_with_their_names() -> None:
    task = docker_launch({"network": "HOST"}, ports=[{"port": 0, "name": "web"}, {"port": 9000}])
    assert host_ports_wanted(task, spec_of(task)) == [
        HostPort(port=0, name="web"),
        HostPort(port=9000),
    ]
    env = task_env(task, spec_of(task), [31007, 9000], "node7")
    assert {key: env[key] for key in ("PORT0", "PORT_WEB", "PORT1", "PORT", "PORTS")} == {
        "PORT0": "31007",
        "PORT_WEB": "31007",
        "PORT1": "9000",
        "PORT": "31007",
        "PORTS": "31007,9000",
    }


def test_a_host_network_container_without_ports_still_gets_its_mappings_host_ports() -> None:
    task = docker_launch({"network": "HOST", "portMappings": [{"containerPort": 80}]})
    assert host_ports_wanted(task, spec_of(task)) == [HostPort(port=0)]
