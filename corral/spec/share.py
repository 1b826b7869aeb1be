"""Fair share as the API answers it (``corral share``, what Slurm's ``sshare`` gives)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from corral.spec.accounts import Quota


class Amounts(BaseModel):
    """An amount of cpus, memory (MiB) and GPUs."""

    cpus: float = 0.0
    mem: int = 0
    gpus: int = 0


class DecayedUsage(BaseModel):
    """What a user's tasks held over time, each hour counted at half its weight one
    half-life later."""

    cpu_hours: float = 0.0
    mem_gib_hours: float = 0.0
    gpu_hours: float = 0.0


class UserShare(BaseModel):
    """One user's standing in fair share."""

    user: str
    group: str = Field(description="Their primary group (its quota and weight apply).")
    weight: float = Field(description="Their weight times their group's.")
    quota: Quota = Field(description="Their own hard caps; null: none.")
    group_quota: Quota = Field(description="Their group's hard caps (on its users together).")
    usage: DecayedUsage
    usage_share: float = Field(
        description="Dominant share of the cluster their decayed usage amounts to: holding a "
        "fraction f for ever amounts to f."
    )
    running_share: float = Field(description="Dominant share of the cluster they hold now.")
    share: float = Field(
        description="What fair share ranks users by: (running + usage share of the sum) / "
        "weight. The lowest goes next."
    )
    running: int = Field(description="Tasks holding resources (placed or running).")
    held: Amounts = Field(description="What those tasks hold.")
    waiting: int = Field(description="Tasks waiting for a place.")


class ShareReport(BaseModel):
    """Every user's standing, lowest share (next in line) first."""

    half_life: float = Field(description="Seconds after which past usage counts half.")
    capacity: Amounts = Field(description="Every agent's resources together.")
    users: list[UserShare]
