"""GPUs handed out for real: agents started with ``--gpus`` (and, where the machine has one, an
NVIDIA GPU found through NVML) give each task specific devices, exclusively, and a task that fits
nowhere for want of GPUs waits until one is released."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from corral.spec.jobs import JobSpec
from corral.spec.views import TaskView
from tests.support.cluster import Cluster, shell_wait_for, wait_for_file


def gpu_job(name: str, out: Path) -> JobSpec:
    """A 1-GPU job whose task writes ``HOST CUDA_VISIBLE_DEVICES CORRAL_GPUS`` to
    ``out/<job>``, then waits until the test creates ``out/<job>.release``."""
    line = '"$HOST $CUDA_VISIBLE_DEVICES $CORRAL_GPUS"'
    script = f"echo {line} > {out}/$CORRAL_JOB.tmp && mv {out}/$CORRAL_JOB.tmp {out}/$CORRAL_JOB"
    release = shell_wait_for(Path(f"{out}/$CORRAL_JOB.release"))
    task = {"shell": f"{script}; {release}", "cpus": 0.1, "mem": 32, "gpus": 1}
    return JobSpec.model_validate({"name": name, "task": task})


def task_of(cluster: Cluster, job: str) -> TaskView:
    with cluster.client() as c:
        return c.task(f"{job}.1.0.0")


def waiting(cluster: Cluster, job: str) -> TaskView | None:
    """The job's task once the scheduler has said why it waits."""
    task = task_of(cluster, job)
    return task if task.waiting else None


def running(cluster: Cluster, jobs: list[str]) -> list[str] | None:
    """The jobs whose task runs, if three do."""
    on = [j for j in jobs if task_of(cluster, j).state.value == "RUNNING"]
    return on if len(on) == 3 else None


def test_three_gpu_tasks_get_distinct_devices_and_a_fourth_waits_until_one_is_released(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.add_agent("gpu-a", gpus=2)
    cluster.add_agent("gpu-b", gpus=1)
    out = tmp_path / "out"
    out.mkdir()
    jobs = ["train-1", "train-2", "train-3", "train-4"]
    with cluster.client() as c:
        for job in jobs:
            c.create_job(gpu_job(job, out))

    placed = cluster.wait_until(lambda: running(cluster, jobs), 60, "three GPU tasks RUNNING")
    pairs = set()
    for job in placed:
        task = task_of(cluster, job)
        assert task.hostname is not None and len(task.gpus) == 1
        index = str(task.gpus[0])
        # What the task saw is what the master gave it: its agent and its device.
        seen = wait_for_file(out / job, 30).split()
        assert seen == [task.hostname, index, index], (job, seen)
        pairs.add((task.hostname, task.gpus[0]))
    assert pairs == {("gpu-a", 0), ("gpu-a", 1), ("gpu-b", 0)}

    [fourth] = set(jobs) - set(placed)
    left = cluster.wait_until(lambda: waiting(cluster, fourth), 30, f"{fourth} to wait")
    assert left.state.value == "PENDING" and not (out / fourth).exists()
    assert "insufficient gpus" in (left.waiting or "")

    freed = next(j for j in placed if task_of(cluster, j).hostname == "gpu-a")
    freed_task = task_of(cluster, freed)
    (out / f"{freed}.release").touch()
    cluster.wait_task(freed_task.id, "FINISHED")
    started = cluster.wait_task(f"{fourth}.1.0.0", "RUNNING", timeout=60)
    assert (started.hostname, started.gpus) == (freed_task.hostname, freed_task.gpus)
    index = str(freed_task.gpus[0])
    assert wait_for_file(out / fourth, 30).split() == ["gpu-a", index, index]

    for job in jobs:
        (out / f"{job}.release").touch()


def nvidia_gpus() -> list[str]:
    """The GPU models ``nvidia-smi -L`` lists, by index (none without a working driver)."""
    if shutil.which("nvidia-smi") is None:
        return []
    done = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        return []
    return [line.split(": ", 1)[1].rsplit(" (UUID", 1)[0] for line in done.stdout.splitlines()]


def test_on_a_real_nvidia_gpu_each_task_gets_its_own_device(
    cluster: Cluster, tmp_path: Path
) -> None:
    models = nvidia_gpus()
    if not models:
        # Hardware, not software: no package makes a GPU appear, so this skip holds in CI too.
        pytest.skip(
            "needs an NVIDIA GPU with its driver (nvidia-smi -L lists none here); "
            "skipped wherever the hardware is missing, CI included"
        )
    cluster.add_agent("gpu-node")  # no --gpus: the agent finds its GPUs through NVML
    with cluster.client() as c:
        [agent] = c.agents()
        assert [(g.index, g.model) for g in agent.gpus] == list(enumerate(models))
        assert all(g.memory > 0 for g in agent.gpus)
        out = tmp_path / "out"
        out.mkdir()
        jobs = [f"cuda-{i}" for i in range(len(models) + 1)]
        for job in jobs:
            c.create_job(gpu_job(job, out))

    def placed() -> list[str] | None:
        on = [j for j in jobs if task_of(cluster, j).state.value == "RUNNING"]
        return on if len(on) == len(models) else None

    on = cluster.wait_until(placed, 60, f"{len(models)} GPU tasks RUNNING")
    seen = {wait_for_file(out / job, 30).split()[1] for job in on}
    assert seen == {str(i) for i in range(len(models))}
    [last] = set(jobs) - set(on)
    left = cluster.wait_until(lambda: waiting(cluster, last), 30, f"{last} to wait")
    assert "insufficient gpus" in (left.waiting or "")
    for job in jobs:
        (out / f"{job}.release").touch()
