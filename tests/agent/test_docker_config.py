"""The docker executor's pure half, no Docker needed: the create body, checks, exits, host ports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from corral.agent.executors.base import LaunchError, TaskExit
from corral.agent.executors.docker_config import (
    JSON,
    SANDBOX_MOUNT,
    apply_parameters,
    check_privilege,
    check_volumes,
    command_fields,
    container_config,
    describe_end,
    is_under,
    parse_bytes,
    ports_of,
    stop_signal_name,
    task_env,
    workdir,
)
from corral.spec.docker import DockerSpec, Parameter
from corral.spec.protocol import TaskLaunch
from corral.spec.states import TaskState


def spec(**fields: Any) -> DockerSpec:
    """A docker section with the test image and the given fields (by their JSON names)."""
    return DockerSpec.model_validate({"image": "corral-test/busybox:latest", **fields})


def launch(docker: DockerSpec | None = None, **fields: Any) -> TaskLaunch:
    """A launch of task ``t-1`` with 0.5 cpus and 64 MiB."""
    base: dict[str, Any] = {"task_id": "t-1", "job": "tests", "cpus": 0.5, "mem": 64}
    return TaskLaunch.model_validate({**base, "driver": "docker", "docker": docker, **fields})


def config_of(task: TaskLaunch, host_ports: list[int] | None = None) -> JSON:
    """The create body for ``task`` on agent ``a-1``, sandbox ``/agent/t-1/sandbox``."""
    assert task.docker is not None
    return container_config(
        task,
        task.docker,
        agent_id="a-1",
        sandbox=Path("/agent/t-1/sandbox"),
        host_ports=host_ports or [],
        hostname="node7",
        volume_sources=[v.host_path for v in task.docker.volumes],
    )


# --- the create body


def test_resources_become_nano_cpus_and_a_memory_limit_without_swap() -> None:
    host = config_of(launch(spec(), cpus=1.5, mem=256))["HostConfig"]
    assert host["NanoCpus"] == 1_500_000_000
    assert host["Memory"] == host["MemorySwap"] == 256 * 1024 * 1024


def test_the_sandbox_is_mounted_read_write_where_mesos_puts_it_and_volumes_keep_their_mode() -> (
    None
):
    volumes = [
        {"containerPath": "/in", "hostPath": "/data/in", "mode": "RO"},
        {"containerPath": "/out", "hostPath": "/data/out", "mode": "RW"},
    ]
    binds = config_of(launch(spec(volumes=volumes)))["HostConfig"]["Binds"]
    assert binds == [
        f"/agent/t-1/sandbox:{SANDBOX_MOUNT}:rw",
        "/data/in:/in:ro",
        "/data/out:/out:rw",
    ]


def test_labels_name_the_task_and_agent_and_a_task_cannot_overwrite_them() -> None:
    labels = {"team": "astro", "corral.task_id": "someone-else"}
    params = [{"key": "label", "value": "corral.agent_id=forged"}]
    config = config_of(launch(spec(labels=labels, parameters=params)))
    assert config["Labels"] == {"team": "astro", "corral.task_id": "t-1", "corral.agent_id": "a-1"}


def test_the_environment_has_task_ids_ports_host_and_sandbox_over_the_tasks_own_values() -> None:
    mappings = [
        {"containerPort": 80, "hostPort": 0, "name": "http"},
        {"containerPort": 9000, "hostPort": 31005},
    ]
    task = launch(spec(portMappings=mappings), env={"A": "1", "MESOS_SANDBOX": "/elsewhere"})
    assert task.docker is not None
    env = task_env(task, task.docker, [31001, 31005], "node7")
    assert env == {
        "CORRAL_TASK_ID": "t-1",
        "CORRAL_JOB": "tests",
        "MESOS_TASK_ID": "t-1",
        "A": "1",
        "PORT0": "31001",
        "PORT_HTTP": "31001",
        "PORT1": "31005",
        "PORT": "31001",
        "PORTS": "31001,31005",
        "HOST": "node7",
        "MESOS_SANDBOX": SANDBOX_MOUNT,
        "CORRAL_SANDBOX": SANDBOX_MOUNT,
    }
    assert "A=1" in config_of(task, [31001, 31005])["Env"]


def test_bridge_port_mappings_publish_each_container_port_on_its_host_port() -> None:
    mappings = [
        {"containerPort": 80},
        {"containerPort": 53, "hostPort": 31053, "protocol": "udp"},
    ]
    config = config_of(launch(spec(portMappings=mappings)), [31000, 31053])
    assert config["HostConfig"]["NetworkMode"] == "bridge"
    assert config["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert config["HostConfig"]["PortBindings"] == {
        "80/tcp": [{"HostIp": "", "HostPort": "31000"}],
        "53/udp": [{"HostIp": "", "HostPort": "31053"}],
    }


def test_host_networking_publishes_nothing_and_port0_is_the_host_port() -> None:
    config = config_of(launch(spec(network="HOST", portMappings=[{"containerPort": 80}])), [31007])
    assert config["HostConfig"]["NetworkMode"] == "host"
    assert config["HostConfig"]["PortBindings"] == {} and config["ExposedPorts"] == {}
    assert "PORT0=31007" in config["Env"]


def test_the_gpus_given_become_a_device_request_of_nvidia_for_exactly_those_indices() -> None:
    body = config_of(launch(spec(), gpus=2, gpu_devices=[1, 3]))
    assert body["HostConfig"]["DeviceRequests"] == [
        {"Driver": "nvidia", "Count": 0, "DeviceIDs": ["1", "3"], "Capabilities": [["gpu"]]}
    ]
    env = dict(item.split("=", 1) for item in body["Env"])
    # Host indices, for the record; inside, the runtime numbers the container's GPUs from 0.
    assert env["CORRAL_GPUS"] == "1,3"
    assert "CUDA_VISIBLE_DEVICES" not in env


def test_a_container_given_no_gpu_requests_none() -> None:
    body = config_of(launch(spec()))
    assert "DeviceRequests" not in body["HostConfig"]
    assert "CORRAL_GPUS" not in dict(item.split("=", 1) for item in body["Env"])


def test_user_and_workdir_are_passed_and_a_relative_workdir_is_in_the_sandbox() -> None:
    config = config_of(launch(spec(user="nobody"), workdir="work/dir"))
    assert config["User"] == "nobody"
    assert config["WorkingDir"] == f"{SANDBOX_MOUNT}/work/dir"
    assert workdir(launch(spec(), workdir="/srv")) == "/srv"
    assert "WorkingDir" not in config_of(launch(spec())) and "User" not in config_of(launch(spec()))


@pytest.mark.parametrize(
    ("fields", "docker", "expected"),
    [
        (
            {"shell": "echo $HOME && false"},
            {},
            {"Entrypoint": ["/bin/sh", "-c"], "Cmd": ["echo $HOME && false"]},
        ),
        (
            {"shell": "date"},
            {"entrypoint": ["/init"]},
            {"Entrypoint": ["/bin/sh", "-c"], "Cmd": ["date"]},
        ),
        ({"command": ["echo", "a  b"]}, {}, {"Cmd": ["echo", "a  b"]}),
        (
            {"command": ["--verbose"]},
            {"entrypoint": ["/app"]},
            {"Entrypoint": ["/app"], "Cmd": ["--verbose"]},
        ),
        ({}, {}, {}),
        ({}, {"entrypoint": ["/app", "serve"]}, {"Entrypoint": ["/app", "serve"]}),
    ],
    ids=[
        "a shell string runs under sh -c",
        "a shell string replaces the entrypoint",
        "an argv is the Cmd, the image's entrypoint kept",
        "an argv goes to the given entrypoint",
        "nothing given keeps the image's defaults",
        "an entrypoint alone replaces the image's",
    ],
)
def test_the_command_is_exactly_what_the_launch_says(
    fields: dict[str, Any], docker: dict[str, Any], expected: JSON
) -> None:
    assert command_fields(launch(spec(**docker), **fields), spec(**docker)) == expected


def test_a_launch_with_both_command_and_shell_is_refused() -> None:
    with pytest.raises(LaunchError, match="either command or shell"):
        config_of(launch(spec(), command=["true"], shell="true"))


# --- parameters


@pytest.mark.parametrize(
    ("key", "value", "section", "field", "expected"),
    [
        ("shm-size", "64m", "HostConfig", "ShmSize", 64 * 1024 * 1024),
        (
            "ulimit",
            "nofile=1024:2048",
            "HostConfig",
            "Ulimits",
            [{"Name": "nofile", "Soft": 1024, "Hard": 2048}],
        ),
        (
            "ulimit",
            "nproc=50",
            "HostConfig",
            "Ulimits",
            [{"Name": "nproc", "Soft": 50, "Hard": 50}],
        ),
        ("hostname", "worker", "Config", "Hostname", "worker"),
        ("init", "true", "HostConfig", "Init", True),
        ("read-only", "", "HostConfig", "ReadonlyRootfs", True),
        ("tmpfs", "/run:rw,size=64m", "HostConfig", "Tmpfs", {"/run": "rw,size=64m"}),
        ("tmpfs", "/scratch", "HostConfig", "Tmpfs", {"/scratch": ""}),
        ("cap-drop", "NET_RAW", "HostConfig", "CapDrop", ["NET_RAW"]),
        ("cap-add", "SYS_ADMIN", "HostConfig", "CapAdd", ["SYS_ADMIN"]),
        ("label", "tier=web", "Config", "Labels", {"tier": "web"}),
        ("memory-swappiness", "0", "HostConfig", "MemorySwappiness", 0),
        ("stop-signal", "SIGINT", "Config", "StopSignal", "SIGINT"),
        ("log-driver", "json-file", "HostConfig", "LogConfig", {"Type": "json-file", "Config": {}}),
        ("pid", "host", "HostConfig", "PidMode", "host"),
        ("ipc", "host", "HostConfig", "IpcMode", "host"),
        ("uts", "host", "HostConfig", "UTSMode", "host"),
        (
            "device",
            "/dev/fuse",
            "HostConfig",
            "Devices",
            [
                {
                    "PathOnHost": "/dev/fuse",
                    "PathInContainer": "/dev/fuse",
                    "CgroupPermissions": "rwm",
                }
            ],
        ),
        (
            "device",
            "/dev/sda:/dev/xvda:r",
            "HostConfig",
            "Devices",
            [{"PathOnHost": "/dev/sda", "PathInContainer": "/dev/xvda", "CgroupPermissions": "r"}],
        ),
        ("security-opt", "no-new-privileges", "HostConfig", "SecurityOpt", ["no-new-privileges"]),
    ],
)
def test_each_parameter_sets_the_field_docker_run_would_set(
    key: str, value: str, section: str, field: str, expected: Any
) -> None:
    config: JSON = {}
    host_config: JSON = {}
    apply_parameters([Parameter(key=key, value=value)], config, host_config)
    assert {"Config": config, "HostConfig": host_config}[section] == {field: expected}


def test_repeated_list_parameters_add_up_and_single_ones_take_the_last_value() -> None:
    config: JSON = {}
    host_config: JSON = {}
    params = [
        Parameter(key="cap-drop", value="NET_RAW"),
        Parameter(key="cap-drop", value="MKNOD"),
        Parameter(key="hostname", value="a"),
        Parameter(key="hostname", value="b"),
    ]
    apply_parameters(params, config, host_config)
    assert host_config == {"CapDrop": ["NET_RAW", "MKNOD"]} and config == {"Hostname": "b"}


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("shm-size", "lots"),
        ("ulimit", "nofile"),
        ("init", "maybe"),
        ("memory-swappiness", "high"),
        ("tmpfs", "run"),
        ("device", ""),
    ],
)
def test_a_parameter_with_a_bad_value_is_refused_naming_it(key: str, value: str) -> None:
    with pytest.raises(LaunchError, match=rf"parameters\[1\] \({key}="):
        apply_parameters([Parameter(key="init"), Parameter(key=key, value=value)], {}, {})


def test_an_unknown_parameter_is_refused() -> None:
    # The spec refuses it too; this is for a Parameter built without validation.
    unknown = Parameter.model_construct(key="volumes-from", value="other")
    with pytest.raises(LaunchError, match="'volumes-from' is not supported"):
        apply_parameters([unknown], {}, {})


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("512", 512),
        ("1k", 1024),
        ("64m", 64 << 20),
        ("64MB", 64 << 20),
        ("2g", 2 << 30),
        ("1.5k", 1536),
    ],
)
def test_sizes_are_read_as_docker_run_reads_them(text: str, size: int) -> None:
    assert parse_bytes(text) == size


# --- checks before the launch


@pytest.mark.parametrize(
    ("path", "root", "under"),
    [
        ("/data", "/data", True),
        ("/data/x/y", "/data", True),
        ("/data2", "/data", False),
        ("/dat", "/data", False),
        ("/etc", "/", True),
    ],
)
def test_a_path_is_under_a_root_by_whole_components(path: str, root: str, under: bool) -> None:
    assert is_under(path, root) is under


def test_volumes_under_an_allowed_path_pass(tmp_path: Path) -> None:
    (tmp_path / "data" / "in").mkdir(parents=True)
    volume = {"containerPath": "/in", "hostPath": str(tmp_path / "data" / "in")}
    check_volumes(spec(volumes=[volume]), [tmp_path / "data"])


def test_a_volume_beside_an_allowed_path_is_refused_naming_it(tmp_path: Path) -> None:
    (tmp_path / "data2").mkdir()
    volumes = [{"containerPath": "/x", "hostPath": str(tmp_path / "data2")}]
    with pytest.raises(LaunchError) as caught:
        check_volumes(spec(volumes=volumes), [tmp_path / "data"])
    assert str(caught.value) == (
        f"volumes[0].host_path {tmp_path}/data2 is not under an allowed path ({tmp_path}/data)"
    )


def test_a_symbolic_link_out_of_an_allowed_path_is_refused(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "etc").symlink_to("/etc")
    volumes = [{"containerPath": "/x", "hostPath": str(tmp_path / "data" / "etc")}]
    with pytest.raises(LaunchError, match="is not under an allowed path"):
        check_volumes(spec(volumes=volumes), [tmp_path / "data"])


def test_a_volume_whose_host_path_does_not_exist_is_refused_naming_it(tmp_path: Path) -> None:
    volumes = [{"containerPath": "/x", "hostPath": str(tmp_path / "nope")}]
    with pytest.raises(LaunchError, match=rf"volumes\[0\].host_path {tmp_path}/nope does not"):
        check_volumes(spec(volumes=volumes), [tmp_path])


def test_no_volume_is_allowed_when_no_path_is() -> None:
    with pytest.raises(LaunchError, match=r"not under an allowed path \(none configured\)"):
        check_volumes(spec(volumes=[{"containerPath": "/x", "hostPath": "/tmp"}]), [])


@pytest.mark.parametrize(
    ("fields", "needs"),
    [
        ({"privileged": True}, "privileged"),
        (
            {"parameters": [{"key": "init"}, {"key": "cap-add", "value": "ALL"}]},
            r"parameters\[1\] \(cap-add\)",
        ),
        ({"parameters": [{"key": "pid", "value": "host"}]}, r"parameters\[0\] \(pid\)"),
    ],
)
def test_privileged_settings_are_refused_unless_the_agent_allows_them(
    fields: dict[str, Any], needs: str
) -> None:
    with pytest.raises(LaunchError, match=rf"^{needs} needs a privileged container"):
        check_privilege(spec(**fields), allow_privileged=False)
    check_privilege(spec(**fields), allow_privileged=True)
    check_privilege(spec(parameters=[{"key": "init"}]), allow_privileged=False)


# --- how a container ended


@pytest.mark.parametrize(
    ("state", "kill_reason", "expected"),
    [
        ({"ExitCode": 0}, None, TaskExit(TaskState.FINISHED, 0, "exited with status 0")),
        ({"ExitCode": 3}, None, TaskExit(TaskState.FAILED, 3, "exited with status 3")),
        (
            {"ExitCode": 127},
            None,
            TaskExit(TaskState.FAILED, 127, "exited with status 127 (command not found)"),
        ),
        (
            {"ExitCode": 137, "OOMKilled": True},
            None,
            TaskExit(TaskState.FAILED, None, "memory limit exceeded (64 MiB)"),
        ),
        (
            {"ExitCode": 1, "OOMKilled": True},
            None,
            TaskExit(TaskState.FAILED, 1, "memory limit exceeded (64 MiB)"),
        ),
        ({"ExitCode": 139}, None, TaskExit(TaskState.FAILED, None, "terminated by signal SIGSEGV")),
        (
            {"ExitCode": 143},
            "killed (SIGTERM)",
            TaskExit(TaskState.KILLED, None, "killed (SIGTERM)"),
        ),
        ({"ExitCode": 0}, "killed (SIGTERM)", TaskExit(TaskState.KILLED, 0, "killed (SIGTERM)")),
    ],
)
def test_the_end_of_a_container_maps_to_the_tasks_state_and_reason(
    state: JSON, kill_reason: str | None, expected: TaskExit
) -> None:
    assert describe_end(state, kill_reason, 64) == expected


@pytest.mark.parametrize(
    ("stop_signal", "name"),
    [(None, "SIGTERM"), ("SIGINT", "SIGINT"), ("quit", "SIGQUIT"), ("9", "SIGKILL")],
)
def test_the_stop_signal_is_named_as_the_kill_reason_shows_it(
    stop_signal: str | None, name: str
) -> None:
    assert stop_signal_name({"Config": {"StopSignal": stop_signal}}) == name


def test_the_host_ports_of_a_container_are_read_back_from_its_environment() -> None:
    container = {"Config": {"Env": ["PATH=/bin", "PORT0=31002", "PORT1=31009", "PORTS=x"]}}
    assert ports_of(container, 2) == [31002, 31009]
