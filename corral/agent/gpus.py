"""The GPUs an agent offers: NVIDIA's, found through NVML, or as many as declared by hand.

NVML (``nvidia-ml-py``) is imported only when GPUs are looked for, so agents that declare theirs
and every other command load none of it. A node without the NVIDIA driver has no NVML library:
it offers no GPU, and says so in the log without a traceback.
"""

from __future__ import annotations

import logging

from corral.spec.protocol import GpuDevice, TaskLaunch, declared_gpus

log = logging.getLogger(__name__)


def detect() -> list[GpuDevice]:
    """The NVIDIA GPUs of this node by NVML index, with their model and memory; none where
    NVML cannot be loaded or answers with an error."""
    import pynvml

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as e:
        log.info("no GPUs detected: NVML unavailable (%s)", e)
        return []
    try:
        found = []
        for index in range(int(pynvml.nvmlDeviceGetCount())):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            name = pynvml.nvmlDeviceGetName(handle)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle).total
            model = name.decode() if isinstance(name, bytes) else str(name)  # bytes before 11.5
            found.append(GpuDevice(index=index, model=model, memory=int(memory) // 2**20))
        return found
    except pynvml.NVMLError as e:
        log.warning("no GPUs offered: NVML failed while listing them (%s)", e)
        return []
    finally:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass  # nothing left to release


def offered(declared: int | None) -> list[GpuDevice]:
    """The GPUs an agent offers: ``declared`` ones (``--gpus N``; 0 turns GPUs off), else those
    NVML finds."""
    return detect() if declared is None else declared_gpus(declared)


def gpu_env(launch: TaskLaunch, *, cuda: bool) -> dict[str, str]:
    """The variables that tell a task its GPUs: ``CORRAL_GPUS``, the indices it was given,
    comma-separated. With ``cuda`` (a process, which sees every GPU of the node) also
    ``CUDA_VISIBLE_DEVICES`` with those indices, and ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` so that CUDA
    numbers the GPUs as NVML does (it puts the fastest first otherwise). None without GPUs."""
    if not launch.gpu_devices:
        return {}
    indices = ",".join(str(i) for i in launch.gpu_devices)
    env = {"CORRAL_GPUS": indices}
    if cuda:
        env.update(CUDA_VISIBLE_DEVICES=indices, CUDA_DEVICE_ORDER="PCI_BUS_ID")
    return env
