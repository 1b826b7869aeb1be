"""A gang's rank on its agent: its environment, its hostfile, mpirun's remote shell, and what a
rank runs that does not run the command.

Every rank gets ``CORRAL_RANK``, ``CORRAL_LOCAL_RANK``, ``CORRAL_NODE_RANK``, ``CORRAL_NODES``,
``CORRAL_TASKS_PER_NODE``, ``CORRAL_GANG_SIZE``, ``CORRAL_GANG``, ``CORRAL_HOSTS`` and
``CORRAL_HOSTFILE``: ``.corral/hostfile`` in its sandbox, one ``host slots=N`` line per node
(Open MPI's format), the hosts being the hostnames of the agents the nodes were placed on.

Unless the gang runs its command on every rank, rank 0 runs it and the other ranks run
:data:`WAIT`, which keeps them (their sandbox, cgroup or container) alive until the gang ends,
as the MPI operator's workers run sshd. The first rank of each node runs mpirun's daemon for
the node and the MPI processes it starts, so it holds the cpu and memory limits of all the
node's ranks. Rank 0's ``mpirun`` then starts its daemons in them
through ``.corral/rsh``, set as Open MPI's ``plm_rsh_agent``: a POSIX shell script (nothing to
install in an image, no credential in the task) that hands ``HOST COMMAND`` to this agent
through FIFOs in the same directory; the agent relays it to the master, which runs the command
in the gang's task on that host, as ``corral exec`` does (see ``corral/agent/rsh.py``).
Open MPI is told to start every daemon from rank 0 (no tree spawn: the script is in rank 0's
sandbox) and to keep them attached to their remote shell, so that each daemon, and the ranks
it starts, stay in the task it was started in.

Each rank keeps Open MPI's session files (what its mpirun or daemon writes, PMIx's sockets and
shared memory) under a directory of its own, :func:`session_base`: by default every daemon of a
machine writes under ``/tmp/ompi.HOST.UID/jf.N``, named after mpirun, and clears that directory
as it starts. Two nodes of one gang on one machine (several agents on one host: a laptop
cluster, the tests) then removed each other's files, and a daemon failed to start now and then
("A call to mkdir was unable to create the desired directory ... File exists").
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from corral.spec.protocol import GangMember, TaskLaunch

CORRAL_DIR = ".corral"  # in a rank's sandbox: the hostfile, the remote shell and its FIFOs
HOSTFILE = "hostfile"
RSH = "rsh"
REQUESTS = "requests"  # the FIFO the remote shell announces its requests on

# What a rank runs that does not run the command: nothing, until it is stopped. The trap makes
# it end at once on SIGTERM also as a container's PID 1 (which ignores signals it has no handler
# for); the sleep runs in the background so that the shell takes the signal while it waits.
WAIT = "trap 'exit 0' TERM INT; while :; do sleep 86400 & wait $!; done"

# Arguments: HOST COMMAND...; see the module docstring. The agent answers the request "ID" with
# the command's output on ID.out and ID.err, then its exit status on ID.status; the readers are
# opened before the request is made, so no answer is written before someone reads it.
RSH_SCRIPT = """\
#!/bin/sh
# Corral's remote shell for a gang (mpirun's plm_rsh_agent): "rsh HOST COMMAND..." runs COMMAND
# with /bin/sh -c in this gang's task on HOST, as ssh runs a remote command. Its input is not
# read (as ssh -n); its exit status is the command's, 255 if it could not be run.
while [ $# -gt 0 ]; do case $1 in -*) shift ;; *) break ;; esac; done
[ $# -ge 2 ] || { echo "usage: $0 HOST COMMAND..." >&2; exit 255; }
host=$1
shift
d=${0%/*}
id=$$
rm -f "$d/$id.out" "$d/$id.err" "$d/$id.status" "$d/$id.cmd"
mkfifo "$d/$id.out" "$d/$id.err" "$d/$id.status" || exit 255
cat "$d/$id.err" >&2 &
cat "$d/$id.out" &
printf '%s\\n%s' "$host" "$*" > "$d/$id.cmd"
echo "$id" > "$d/requests"
status=$(cat "$d/$id.status")
wait
rm -f "$d/$id.out" "$d/$id.err" "$d/$id.status" "$d/$id.cmd"
exit "${status:-255}"
"""


def corral_dir_seen(sandbox_seen: str) -> str:
    """A rank's ``.corral`` directory as the task sees it (``sandbox_seen``: its sandbox so)."""
    return f"{sandbox_seen.rstrip('/')}/{CORRAL_DIR}"


def session_base(corral_dir: str) -> str:
    """Where a rank's mpirun or daemon keeps its session files (Open MPI's ``orte_tmpdir_base``):
    a directory of the rank's own, named after its ``.corral`` directory as it sees it (a
    process rank's is unique on its host, a container has a ``/tmp`` of its own), and short
    enough for the unix sockets PMIx makes in it (108 bytes at most, which a sandbox's path may
    use up)."""
    return f"/tmp/corral-mpi-{hashlib.sha256(corral_dir.encode()).hexdigest()[:16]}"


def mpi_defaults(corral_dir: str) -> dict[str, str]:
    """Open MPI's settings for a gang's rank (``corral_dir``: its ``.corral`` as it sees it);
    the task's own environment may override them."""
    return {
        "OMPI_MCA_plm_rsh_agent": f"{corral_dir}/{RSH}",
        "OMPI_MCA_plm_rsh_no_tree_spawn": "1",
        "OMPI_MCA_orte_leave_session_attached": "1",
        "OMPI_MCA_orte_default_hostfile": f"{corral_dir}/{HOSTFILE}",
        "OMPI_MCA_orte_tmpdir_base": session_base(corral_dir),
        # A daemon takes its settings from its own rank's environment, which is the gang's as
        # mpirun's is: mpirun passing its own on the daemon's command line would give every
        # daemon rank 0's session directory.
        "OMPI_MCA_plm_rsh_pass_environ_mca_params": "0",
    }


def remove_session_base(launch: TaskLaunch, sandbox: Path) -> None:
    """Remove what Open MPI left of a process rank's session files once the rank has ended (a
    container's ``/tmp`` goes with it)."""
    if launch.gang is not None and launch.driver == "process":
        # A process rank sees its sandbox where the agent made it (``rank_launch``).
        shutil.rmtree(session_base(corral_dir_seen(str(sandbox))), ignore_errors=True)


def gang_facts(member: GangMember, corral_dir: str) -> dict[str, str]:
    """A rank's place in its gang, as environment variables."""
    return {
        "CORRAL_GANG": member.gang,
        "CORRAL_RANK": str(member.rank),
        "CORRAL_LOCAL_RANK": str(member.local_rank),
        "CORRAL_NODE_RANK": str(member.node_rank),
        "CORRAL_NODES": str(member.nodes),
        "CORRAL_TASKS_PER_NODE": str(member.tasks_per_node),
        "CORRAL_GANG_SIZE": str(member.size),
        "CORRAL_HOSTS": ",".join(member.hosts),
        "CORRAL_HOSTFILE": f"{corral_dir}/{HOSTFILE}",
    }


def rank_launch(launch: TaskLaunch, sandbox_seen: str) -> TaskLaunch:
    """The launch a gang's rank is started with (``sandbox_seen``: its sandbox as the task sees
    it): the gang's environment, and :data:`WAIT` for a rank that does not run the command.
    Any other launch is returned as it is."""
    member = launch.gang
    if member is None:
        return launch
    corral_dir = corral_dir_seen(sandbox_seen)
    env = {
        **mpi_defaults(corral_dir),
        **launch.env,
        **gang_facts(member, corral_dir),
    }
    update: dict[str, object] = {"env": env}
    if not member.every_rank and member.local_rank == 0:
        # mpirun's daemon of this node, and every MPI process it starts, run in this task:
        # it holds the limits of the node's ranks (the others only wait).
        n = member.tasks_per_node
        update |= {"cpus": launch.cpus * n, "mem": launch.mem * n}
    if not member.runs_command:
        update |= {"command": None, "shell": WAIT}
    return launch.model_copy(update=update)


def hostfile(member: GangMember) -> str:
    """Open MPI's hostfile of the gang: ``host slots=N`` per node, in node order."""
    return "".join(f"{host} slots={member.tasks_per_node}\n" for host in member.hosts)


def prepare(member: GangMember, sandbox: Path) -> Path:
    """Write the rank's ``.corral`` directory (hostfile, remote shell, its FIFO) into its new
    sandbox; answers the directory. Anyone may write there, as in the sandbox of a container
    that runs as another user: it is the task's own, reached only through its sandbox."""
    directory = sandbox / CORRAL_DIR
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o1777)
    (directory / HOSTFILE).write_text(hostfile(member))
    script = directory / RSH
    script.write_text(RSH_SCRIPT)
    script.chmod(0o755)
    requests = directory / REQUESTS
    requests.unlink(missing_ok=True)
    os.mkfifo(requests)
    requests.chmod(0o666)
    return directory
