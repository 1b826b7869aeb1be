"""The 96-container sweep through Corral, beside the same containers run by `docker run --rm`.

Run from the repository root with dockerd running: ``python bench/docker_sweep.py``. Each task
reads its macro from a read-only mount and writes a .tgz into a read-write mount (0.5 cpu,
512 MiB). Corral: a master and one agent (6 cpus, 6 GiB: 12 tasks at once). Baseline: the same
96 containers through the Docker CLI, 12 at a time. Prints both wall times and their ratio.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from corral.spec.jobs import JobSpec  # noqa: E402
from tests.support.cluster import Cluster  # noqa: E402
from tests.support.images import ensure_test_image  # noqa: E402

TASKS = 96
PARALLEL = 12
SHELL = "cd /in && tar czf /out/sim_{index}.mac.tgz sim_{index}.mac"


def prepare(root: Path) -> tuple[Path, Path]:
    """Input macros and an empty output directory."""
    inputs, outputs = root / "macros", root / "results"
    inputs.mkdir(parents=True)
    outputs.mkdir(parents=True)
    for i in range(TASKS):
        (inputs / f"sim_{i}.mac").write_text(f"/run/beamOn {1000 + i}\n")
    return inputs, outputs


def corral_sweep(root: Path, image: str) -> float:
    """Seconds from submitting the sweep to its run's success."""
    inputs, outputs = prepare(root / "corral")
    cluster = Cluster(root / "cluster")
    cluster.start_master()
    try:
        cluster.add_agent("bench", cpus=6, mem=6 * 1024, allow_volumes=[root])
        spec = JobSpec.model_validate(
            {
                "name": "sweep",
                "array": f"0-{TASKS - 1}",
                "task": {
                    "shell": SHELL,
                    "cpus": 0.5,
                    "mem": 512,
                    "docker": {
                        "image": image,
                        "volumes": [
                            {"containerPath": "/in", "hostPath": str(inputs), "mode": "RO"},
                            {"containerPath": "/out", "hostPath": str(outputs), "mode": "RW"},
                        ],
                    },
                },
            }
        )
        with cluster.client() as c:
            start = time.perf_counter()
            c.create_job(spec)
            outcome = cluster.wait_run("sweep", timeout=900)
            elapsed = time.perf_counter() - start
    finally:
        cluster.stop()
    assert outcome == "SUCCEEDED", outcome
    assert len(list(outputs.glob("*.tgz"))) == TASKS
    return elapsed


def cli_sweep(root: Path, image: str) -> float:
    """Seconds for the same containers through `docker run --rm`, PARALLEL at a time."""
    inputs, outputs = prepare(root / "cli")

    def one(i: int) -> None:
        subprocess.run(
            [
                "docker",
                "run",
                "--rm",
                "--cpus",
                "0.5",
                "--memory",
                "512m",
                "-v",
                f"{inputs}:/in:ro",
                "-v",
                f"{outputs}:/out:rw",
                image,
                "sh",
                "-c",
                SHELL.replace("{index}", str(i)),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )

    start = time.perf_counter()
    with ThreadPoolExecutor(PARALLEL) as pool:
        list(pool.map(one, range(TASKS)))
    elapsed = time.perf_counter() - start
    assert len(list(outputs.glob("*.tgz"))) == TASKS
    return elapsed


def main() -> None:
    image = ensure_test_image()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        corral_s = corral_sweep(root, image)
        cli_s = cli_sweep(root, image)
    print(f"corral:     {TASKS} containers in {corral_s:.1f}s ({PARALLEL} at a time)")
    print(f"docker run: {TASKS} containers in {cli_s:.1f}s ({PARALLEL} at a time)")
    print(f"ratio corral/docker-run: {corral_s / cli_s:.2f} (target <= 1.2)")


if __name__ == "__main__":
    main()
