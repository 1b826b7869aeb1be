"""What fair share reads besides the cluster: each user's and group's weight and quotas (the
accounts' settings, kept in memory and reloaded when an admin changes them) and each owner's
decayed usage (kept here, written to the store now and then so that a new master goes on).

Decayed usage is Slurm's: every resource-second an owner's tasks hold counts, halved every
half-life. Kept exactly for holdings constant between two updates: after ``dt`` seconds,
``U <- U * d + R * tau * (1 - d)`` with ``tau = half_life / ln 2`` and ``d = exp(-dt / tau)``.
The core is given ``U / tau`` (``Snapshot.past``): holding ``R`` for ever counts as ``R``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from corral.scheduler.model import Quota, Resources, Snapshot
from corral.store import accounts as rows
from corral.store.errors import StoreUnavailable
from corral.store.store import Fenced, Store, StoreFull

log = logging.getLogger(__name__)
DAY = 86400.0
SAVE_EVERY = 60.0  # seconds: a master that dies forgets at most this much of everyone's usage
_NONE = (0.0, 0.0, 0.0, 0.0)
_NOTHING = Resources()


def core_quota(row: Mapping[Any, Any]) -> Quota | None:
    """A stored user's or group's quota as the core takes it (None: no cap at all)."""
    quota = Quota(row["quota_millicpus"], row["quota_mem"], row["quota_gpus"], row["quota_tasks"])
    return None if quota == Quota() else quota


@dataclass(frozen=True, slots=True)
class Settings:
    """The accounts' fair-share settings, as the core takes them."""

    weights: Mapping[str, float] = field(default_factory=dict)  # user -> user's × group's
    quotas: Mapping[str, Quota] = field(default_factory=dict)
    group_quotas: Mapping[str, Quota] = field(default_factory=dict)
    owner_groups: Mapping[str, str] = field(default_factory=dict)  # user -> primary group

    @classmethod
    def read(cls, store: Store) -> Settings:
        """The settings as stored now."""
        groups = {g["name"]: g for g in rows.all_groups(store)}
        weights, quotas, owner_groups = {}, {}, {}
        for user in rows.all_users(store):
            name, group = user["name"], user["primary_group"]
            owner_groups[name] = group
            weight = user["weight"] * (groups[group]["weight"] if group in groups else 1.0)
            if weight != 1.0:
                weights[name] = weight
            if (quota := core_quota(user)) is not None:
                quotas[name] = quota
        group_quotas = {n: q for n, g in groups.items() if (q := core_quota(g)) is not None}
        return cls(weights, quotas, group_quotas, owner_groups)


def equivalent(usage: tuple[float, float, float, float], tau: float) -> Resources:
    """Decayed usage (resource-seconds) as held resources: divided by the mean life, so that
    holding R for ever counts as R. Rounded to the nearest unit: a GPU is a coarse one, and
    rounding down would never count a user who held one GPU for ever (1 - e^-t/tau < 1)."""
    c, m, d, g = usage
    return Resources(round(c / tau), round(m / tau), round(d / tau), round(g / tau))


class UsageLedger:
    """Each owner's decayed usage (resource-seconds of cpus in millicores, mem, disk, gpus)."""

    def __init__(self, half_life: float = DAY) -> None:
        if not (math.isfinite(half_life) and half_life > 0):
            raise ValueError(f"the fair-share half-life must be > 0 seconds, not {half_life!r}")
        self.half_life = half_life
        self.tau = half_life / math.log(2)  # the mean life
        self.usage: dict[str, tuple[float, float, float, float]] = {}
        self.at: float | None = None  # when ``usage`` was last brought up to date
        self.held: Mapping[str, Resources] = {}  # what each owner held since then

    def advance(self, now: float, held: Mapping[str, Resources]) -> None:
        """Count what was held since the last call up to ``now``, decayed; from now on the
        owners hold ``held``."""
        if self.at is None or now > self.at:
            self.usage = self.as_of(now)
            self.at = now
        self.held = dict(held)

    def as_of(self, now: float) -> dict[str, tuple[float, float, float, float]]:
        """Each owner's usage at ``now``, holding since the last ``advance`` what they held
        then. Owners whose usage decayed below a millicore-second are left out."""
        if self.at is None or now <= self.at:
            return dict(self.usage)
        decay = math.exp(-(now - self.at) / self.tau)
        gain = self.tau * (1 - decay)
        found = {}
        for owner in set(self.usage) | set(self.held):
            c, m, d, g = self.usage.get(owner, _NONE)
            r = self.held.get(owner, _NOTHING)
            new = (
                c * decay + r.millicpus * gain,
                m * decay + r.mem * gain,
                d * decay + r.disk * gain,
                g * decay + r.gpus * gain,
            )
            if max(new) >= 1.0:
                found[owner] = new
        return found

    def past(self) -> dict[str, Resources]:
        """Each owner's decayed usage as the core takes it (``equivalent``); owners whose past
        rounds to nothing are left out."""
        found = {owner: equivalent(u, self.tau) for owner, u in self.usage.items()}
        return {owner: r for owner, r in found.items() if r != _NOTHING}

    # --- the store

    def load(self, store: Store) -> None:
        """Go on from the usage a master last wrote."""
        for row in rows.fair_share_usage(store):
            values = (
                row["millicpu_seconds"],
                row["mem_seconds"],
                row["disk_seconds"],
                row["gpu_seconds"],
            )
            self.usage[row["owner"]] = values
            self.at = row["at"] if self.at is None else max(self.at, row["at"])

    def rows(self) -> list[dict[str, float | str]]:
        """Every owner's usage as of the last ``advance``, as stored rows."""
        if self.at is None:
            return []
        return [
            {
                "owner": owner,
                "millicpu_seconds": c,
                "mem_seconds": m,
                "disk_seconds": d,
                "gpu_seconds": g,
                "at": self.at,
            }
            for owner, (c, m, d, g) in sorted(self.usage.items())
            if c or m or d or g
        ]


def write_usage(store: Store, found: list[dict[str, float | str]]) -> None:
    """Store the usage ``UsageLedger.rows`` gave. Best effort: a master that no longer leads,
    a full disk or a database out of reach keeps it in memory only."""
    if not found:
        return
    try:
        with store.tx() as tx:
            rows.write_fair_share_usage(tx, found)
    except (Fenced, StoreFull, StoreUnavailable) as e:
        log.info("fair-share usage not written: %s", e)


class FairShare:
    """The master's fair-share inputs: the accounts' settings and the decayed usage."""

    def __init__(self, store: Store, half_life: float = DAY) -> None:
        self.store = store
        self.settings = Settings()
        self.ledger = UsageLedger(half_life)
        self._saved_at: float | None = None

    def load(self) -> None:
        """Read the settings and the usage a master last wrote (at start, when taking over)."""
        self.reload()
        self.ledger.load(self.store)

    def reload(self) -> None:
        """Read the settings again (an admin changed a weight, a quota or a user)."""
        self.settings = Settings.read(self.store)

    def fill(self, snapshot: Snapshot, now: float, held: Mapping[str, Resources]) -> Snapshot:
        """``snapshot`` with the weights, quotas and decayed past usage; the owners hold
        ``held`` from now on (see ``track``)."""
        self.track(now, held)
        s = self.settings
        return replace(
            snapshot,
            weights=s.weights,
            quotas=s.quotas,
            group_quotas=s.group_quotas,
            owner_groups=s.owner_groups,
            past=self.ledger.past(),
        )

    def track(self, now: float, held: Mapping[str, Resources]) -> None:
        """Bring the usage up to ``now``; the owners hold ``held`` from now on."""
        self.ledger.advance(now, held)

    def due_rows(self, now: float) -> list[dict[str, float | str]] | None:
        """The usage to write if a write is due (at most every ``SAVE_EVERY`` seconds), taken
        now; the caller writes it (``write_usage``) off the event loop."""
        if self._saved_at is not None and now - self._saved_at < SAVE_EVERY:
            return None
        self._saved_at = now
        return self.ledger.rows()

    def save(self, now: float) -> None:
        """Write the usage now (at a clean stop)."""
        write_usage(self.store, self.ledger.rows())
        self._saved_at = now
