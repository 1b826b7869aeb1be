"""What GPUs an agent offers: those NVML finds (none without an NVIDIA driver), or as many as
declared with ``--gpus N``; and how its hello lists them."""

from __future__ import annotations

import logging
import shutil
import subprocess

import pytest
from pydantic import ValidationError

from corral.agent import gpus
from corral.spec.protocol import AgentResources, GpuDevice, Hello


def nvidia_smi_models() -> list[str] | None:
    """The models ``nvidia-smi -L`` lists, by index; None where it does not work."""
    if shutil.which("nvidia-smi") is None:
        return None
    done = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        return None
    # "GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-...)"
    return [line.split(": ", 1)[1].rsplit(" (UUID", 1)[0] for line in done.stdout.splitlines()]


def test_detection_finds_what_nvidia_smi_lists_or_none_without_a_driver_and_says_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="corral.agent.gpus")
    found = gpus.detect()
    models = nvidia_smi_models()
    if models is None:  # no NVIDIA driver here: nothing found, one quiet line of why
        assert found == []
        assert [(r.levelno, r.getMessage()[:36]) for r in caplog.records] == [
            (logging.INFO, "no GPUs detected: NVML unavailable ("),
        ]
    else:
        assert [(g.index, g.model) for g in found] == list(enumerate(models))
        assert all(g.memory > 0 for g in found)


def test_gpus_declared_by_hand_are_indices_0_to_n_minus_1_of_model_declared() -> None:
    assert gpus.offered(2) == [
        GpuDevice(index=0, model="declared", memory=0),
        GpuDevice(index=1, model="declared", memory=0),
    ]


def test_declaring_0_gpus_turns_detection_off(monkeypatch: pytest.MonkeyPatch) -> None:
    def detect() -> list[GpuDevice]:
        raise AssertionError("NVML was asked")

    monkeypatch.setattr(gpus, "detect", detect)
    assert gpus.offered(0) == []


def hello(count: int, listed: list[GpuDevice] | None = None) -> Hello:
    resources = AgentResources(cpus=1, mem=512, disk=0, gpus=count)
    return Hello(agent_id="a", hostname="h", resources=resources, gpus=listed or [])


def test_a_hello_counting_gpus_without_listing_them_has_them_declared() -> None:
    assert [(g.index, g.model) for g in hello(2).gpus] == [(0, "declared"), (1, "declared")]


@pytest.mark.parametrize(
    ("count", "listed", "problem"),
    [
        pytest.param(1, [GpuDevice(index=0), GpuDevice(index=1)], "resources.gpus is 1, 2 listed"),
        pytest.param(2, [GpuDevice(index=3), GpuDevice(index=3)], "a GPU index is listed twice"),
    ],
)
def test_a_hello_whose_gpus_do_not_add_up_is_refused(
    count: int, listed: list[GpuDevice], problem: str
) -> None:
    with pytest.raises(ValidationError, match=problem):
        hello(count, listed)
