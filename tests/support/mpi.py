"""The MPI program of the gang tests: C, compiled in the test with the host's ``mpicc``; each
rank joins an ``MPI_Allreduce`` and prints a line saying where it ran (see ``LINE``)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

MPI_PROGRAM = r"""
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* This process's ancestors, nearest first: "pid,pid,...,1". */
static void ancestors(char *out, size_t size) {
  int pid = getppid();
  out[0] = '\0';
  while (pid > 1 && strlen(out) + 16 < size) {
    char path[64], stat[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) break;
    size_t n = fread(stat, 1, sizeof stat - 1, f);
    fclose(f);
    stat[n] = '\0';
    sprintf(out + strlen(out), "%d,", pid);
    char *close = strrchr(stat, ')');
    if (!close || sscanf(close + 2, "%*c %d", &pid) != 1) break;
  }
}

/* The first word of a file's first line; "-" if it cannot be read. */
static int first_word(const char *path, char *out, size_t size) {
  FILE *f = fopen(path, "r");
  strcpy(out, "-");
  if (!f) return 0;
  if (fgets(out, size, f)) out[strcspn(out, " \n")] = '\0';
  fclose(f);
  return 1;
}

/* This process's memory cgroup (cgroup v1), else its cgroup (v2). */
static void own_cgroup(char *out, size_t size) {
  char line[1024];
  FILE *f = fopen("/proc/self/cgroup", "r");
  strcpy(out, "-");
  if (!f) return;
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = '\0';
    char *path = strchr(line, ':');
    path = path ? strchr(path + 1, ':') : NULL;
    if (!path) continue;
    int memory = strstr(line, ":memory:") != NULL;
    if (memory || strncmp(line, "0::", 3) == 0) snprintf(out, size, "%s", path + 1);
    if (memory) break;
  }
  fclose(f);
}

int main(int argc, char **argv) {
  int rank, size, len, sum = 0;
  char host[MPI_MAX_PROCESSOR_NAME], chain[4096], cgroup[1024], mem[64], cpu[64];
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  MPI_Get_processor_name(host, &len);
  int mine = rank + 1;
  MPI_Allreduce(&mine, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  ancestors(chain, sizeof chain);
  own_cgroup(cgroup, sizeof cgroup);
  /* The limits of the cgroup it sees as its own (a container's, inside one). */
  first_word("/sys/fs/cgroup/memory/memory.limit_in_bytes", mem, sizeof mem)
    || first_word("/sys/fs/cgroup/memory.max", mem, sizeof mem);
  first_word("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", cpu, sizeof cpu)
    || first_word("/sys/fs/cgroup/cpu.max", cpu, sizeof cpu);
  const char *task = getenv("CORRAL_TASK_ID");
  printf("rank=%d size=%d host=%s sum=%d task=%s ancestors=%s cgroup=%s mem=%s cpu=%s\n",
         rank, size, host, sum, task ? task : "-", chain, cgroup, mem, cpu);
  MPI_Finalize();
  return 0;
}
"""
# One rank's line. cgroup: its memory cgroup; mem: that cgroup's limit in bytes; cpu: its cpu
# quota in µs per 100 ms period; "-" where it could not be read.
LINE = re.compile(
    r"rank=(?P<rank>\d+) size=(?P<size>\d+) host=(?P<host>\S+) sum=(?P<sum>\d+) "
    r"task=(?P<task>\S+) ancestors=(?P<chain>\S*) cgroup=(?P<cgroup>\S+) mem=(?P<mem>\S+) "
    r"cpu=(?P<cpu>\S+)"
)
# The environment of the tests' MPI jobs: they run as root (CI does), and without the daemons'
# run-time control component, which maps the node's hwloc topology into shared memory at an
# address it guesses free and crashed there once in CI (SIGSEGV in hwloc_shmem_topology_write,
# an Open MPI 4 bug); it binds processes, which these tests do not ask for.
MPI_TEST_ENV = {
    "OMPI_ALLOW_RUN_AS_ROOT": "1",
    "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
    "OMPI_MCA_rtc": "^hwloc",
}
INSTALL = "apt-get install -y openmpi-bin libopenmpi-dev"


def need_mpi() -> None:
    """Skip the test where Open MPI is missing (fail it in CI, which installs it)."""
    if shutil.which("mpicc") and shutil.which("mpirun"):
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"Open MPI is missing: {INSTALL}")
    pytest.skip(f"Open MPI is missing: {INSTALL}")


def compile_mpi_program(directory: Path) -> Path:
    """The program, compiled with mpicc into ``directory``; answers the binary."""
    need_mpi()
    source = directory / "allreduce.c"
    source.write_text(MPI_PROGRAM)
    binary = directory / "allreduce"
    subprocess.run(["mpicc", "-O1", "-o", str(binary), str(source)], check=True)
    return binary
