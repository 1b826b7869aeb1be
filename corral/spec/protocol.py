"""The agent channel: JSON messages between master and agents over one WebSocket.

The agent dials the master, says ``hello`` (its resources, what it runs, and the status updates it
has not seen acknowledged), then both sides exchange the messages below. Status updates carry a
per-agent sequence number; the master applies each at most once and answers ``ack``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from corral.spec.docker import DockerSpec
from corral.spec.execs import (
    ExecCancel,
    ExecExit,
    ExecInput,
    ExecOpen,
    ExecOutput,
    ExecResize,
    RshOpen,
)
from corral.spec.services import HealthCheckSpec, HealthCheckStatus
from corral.spec.states import TaskState

# The reason an agent gives for the tasks it stops on its way down: not the tasks' fault, so a
# service does not count it as a failure.
AGENT_SHUTDOWN = "agent shutting down"

# The close code of a WebSocket dialled at a master that does not lead; the reason is the
# leader's URL ("" while none leads): the agent dials that instead.
NOT_LEADER = 4307

# The most one ``read`` returns: base64 makes 5.3 MiB of it, well inside a 16 MiB frame.
MAX_READ = 4 * 1024 * 1024


class AgentResources(BaseModel):
    """What an agent offers: cpus as a number, mem and disk in MiB, how many GPUs."""

    cpus: float = Field(gt=0)
    mem: int = Field(gt=0)
    disk: int = Field(ge=0)
    gpus: int = Field(0, ge=0)


# The model of GPUs declared by hand (``corral agent --gpus N``) rather than found through NVML.
DECLARED_GPU = "declared"


class GpuDevice(BaseModel):
    """One GPU of an agent. ``index`` is NVML's (nvidia-smi's) index: what a task is given in
    ``CUDA_VISIBLE_DEVICES`` and Docker in ``DeviceIDs``."""

    index: int = Field(ge=0)
    model: str = DECLARED_GPU
    memory: int = Field(0, ge=0, description="MiB; 0 when not known (declared by hand).")


def declared_gpus(count: int) -> list[GpuDevice]:
    """``count`` GPUs declared by hand: indices 0..count-1, model "declared"."""
    return [GpuDevice(index=i) for i in range(count)]


class StatusUpdate(BaseModel):
    """A task changed state on the agent. ``seq`` grows by one per update of one agent."""

    type: Literal["status"] = "status"
    seq: int
    task_id: str
    state: TaskState
    time: float  # the agent's wall clock, seconds since the epoch
    reason: str = ""
    exit_code: int | None = None
    ports: list[int] | None = None  # host ports given to the task, with RUNNING
    # With RUNNING: the task's health after a check changed it (None: no news of health).
    healthy: bool | None = None
    # With RUNNING: every health check's record, after one changed (None: no news of them).
    checks: list[HealthCheckStatus] | None = None


class Updates(BaseModel):
    """Status updates in ``seq`` order, sent together: the master applies them in one go."""

    type: Literal["updates"] = "updates"
    updates: list[StatusUpdate]


class HostPort(BaseModel):
    """A host port a process (or host-network container) task asks for."""

    port: int = 0  # 0: any free port of the agent's range
    name: str | None = None  # also given as PORT_<NAME>
    protocol: Literal["tcp", "udp"] = "tcp"


class GangMember(BaseModel):
    """A task's place in a gang (the ranks of an MPI job): its rank and, once the master has
    placed the gang, the host of every node. Rank ``r`` is on node ``r // tasks_per_node``."""

    gang: str  # the gang's name: "{job}.{run}"
    rank: int = Field(ge=0)
    nodes: int = Field(ge=1)
    tasks_per_node: int = Field(ge=1)
    every_rank: bool = False  # else rank 0 runs the command and the other ranks wait (mpirun)
    hosts: list[str] = Field(default_factory=list)  # per node rank; filled in at launch

    @property
    def node_rank(self) -> int:
        """The node this rank is on (0 for the ranks of the first node)."""
        return self.rank // self.tasks_per_node

    @property
    def local_rank(self) -> int:
        """This rank's place among the ranks of its node."""
        return self.rank % self.tasks_per_node

    @property
    def size(self) -> int:
        """How many ranks the gang has."""
        return self.nodes * self.tasks_per_node

    @property
    def runs_command(self) -> bool:
        """Whether this rank runs the task's command (else it waits for the gang to end)."""
        return self.every_rank or self.rank == 0


class TaskLaunch(BaseModel):
    """Everything an agent needs to start one task."""

    task_id: str
    job: str
    command: list[str] | None = None
    shell: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    cpus: float
    mem: int
    disk: int = 0
    workdir: str | None = None
    max_runtime: float | None = None
    kill_grace: float = 10.0
    driver: str = "process"
    docker: DockerSpec | None = None
    ports: list[HostPort] = Field(default_factory=list)  # not for BRIDGE containers
    health_checks: list[HealthCheckSpec] = Field(default_factory=list)
    gpus: int = Field(0, ge=0)  # how many GPUs it asks for
    # The indices of the GPUs it was given on its agent, exclusively: set when it is placed.
    gpu_devices: list[int] = Field(default_factory=list)
    gang: GangMember | None = None  # a rank of a gang job

    def fixed_host_ports(self) -> tuple[int, ...]:
        """The host ports the task needs exactly (the scheduler places it only where they are
        free): a BRIDGE container's mapped ``hostPort``s, else the fixed ``ports``."""
        docker = self.docker
        if docker is not None and docker.network == "BRIDGE":
            wanted = {m.host_port for m in docker.port_mappings if m.host_port}
        else:
            wanted = {p.port for p in self.ports if p.port}
        return tuple(sorted(wanted))


class Hello(BaseModel):
    """First message of an agent on a new connection."""

    type: Literal["hello"] = "hello"
    agent_id: str
    hostname: str
    resources: AgentResources
    attributes: dict[str, str] = Field(default_factory=dict)
    drivers: list[str] = Field(default_factory=lambda: ["process"])
    running: list[str] = Field(default_factory=list, description="Ids of tasks it runs now.")
    unacked: list[StatusUpdate] = Field(default_factory=list)
    cgroups: str = ""
    version: str = ""
    volume_roots: list[str] = Field(
        default_factory=list, description="Host paths under which it mounts volumes."
    )
    allow_privileged: bool = False
    gpus: list[GpuDevice] = Field(
        default_factory=list, description="Its GPUs; as many as resources.gpus counts."
    )
    # It takes ``launches`` (several tasks in one message); an agent of an earlier version
    # does not say so, and is sent a ``launch`` per task.
    batched_launches: bool = False

    @model_validator(mode="after")
    def _gpus_counted(self) -> Hello:
        # An agent that counts GPUs without listing them has them as declared ones.
        if not self.gpus:
            self.gpus = declared_gpus(self.resources.gpus)
        if len(self.gpus) != self.resources.gpus:
            raise ValueError(f"resources.gpus is {self.resources.gpus}, {len(self.gpus)} listed")
        if len({g.index for g in self.gpus}) != len(self.gpus):
            raise ValueError("a GPU index is listed twice")
        return self


class Heartbeat(BaseModel):
    """I am alive."""

    type: Literal["heartbeat"] = "heartbeat"


class ReadResult(BaseModel):
    """Answer to ``read``: a piece of a sandbox file, as the bytes it holds (base64 in JSON)."""

    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")

    type: Literal["read_result"] = "read_result"
    request_id: int
    data: bytes = b""
    next_offset: int = 0  # the offset after the bytes read
    size: int = 0  # the file's size now
    running: bool = False  # True while the task can still write to the file
    error: str | None = None


class SandboxFile(BaseModel):
    """A file in a task's sandbox."""

    path: str  # relative to the sandbox
    size: int
    mtime: float


class FileList(BaseModel):
    """Answer to ``list``: the files of a task's sandbox."""

    type: Literal["files"] = "files"
    request_id: int
    files: list[SandboxFile] = Field(default_factory=list)
    truncated: bool = False  # more files than a listing holds
    error: str | None = None


AgentMessage = Annotated[
    Hello
    | Heartbeat
    | Updates
    | ReadResult
    | FileList
    | ExecOutput
    | ExecExit
    | ExecCancel
    | RshOpen,
    Field(discriminator="type"),
]
agent_message: TypeAdapter[AgentMessage] = TypeAdapter(AgentMessage)


class Welcome(BaseModel):
    """Answer to ``hello``: the agent is registered."""

    type: Literal["welcome"] = "welcome"
    agent_id: str
    heartbeat_interval: float


class Ack(BaseModel):
    """Every status update with ``seq`` at most this one is applied; drop it from the journal."""

    type: Literal["ack"] = "ack"
    seq: int


class Launch(BaseModel):
    """Start this task (what a master sends an agent that does not take ``launches``)."""

    type: Literal["launch"] = "launch"
    task: TaskLaunch


class Launches(BaseModel):
    """Start these tasks, in this order: what one plan (or a reconciliation) places on the
    agent, in one message rather than one each."""

    type: Literal["launches"] = "launches"
    tasks: list[TaskLaunch]


class Kill(BaseModel):
    """Stop this task: SIGTERM, then SIGKILL after ``grace`` seconds. Idempotent."""

    type: Literal["kill"] = "kill"
    task_id: str
    grace: float | None = None
    reason: str = ""
    # The task's work is done (a waiting rank of a gang whose rank 0 finished): it ends
    # FINISHED, not KILLED.
    finish: bool = False


class Read(BaseModel):
    """Read up to ``length`` bytes of a sandbox file from ``offset``."""

    type: Literal["read"] = "read"
    request_id: int
    task_id: str
    file: str
    offset: int = 0
    length: int = 65536


class ListFiles(BaseModel):
    """List the files of a task's sandbox."""

    type: Literal["list"] = "list"
    request_id: int
    task_id: str


MasterMessage = Annotated[
    Welcome
    | Ack
    | Launch
    | Launches
    | Kill
    | Read
    | ListFiles
    | ExecOpen
    | ExecInput
    | ExecResize
    | ExecCancel
    | ExecOutput
    | ExecExit,
    Field(discriminator="type"),
]
master_message: TypeAdapter[MasterMessage] = TypeAdapter(MasterMessage)
