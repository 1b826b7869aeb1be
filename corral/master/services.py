"""What users ask of services: deploy (create, update, scale, restart, delete), cancel a
deployment, kill tasks. Each request is one transaction that stores the desired state and a
deployment; the service loop (``service_loop.py``) then makes reality follow.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import replace

from corral.master.admission import Refusal, Refused, task_refusals
from corral.master.applier import Applier
from corral.master.jobs import Conflict, NotFound
from corral.master.records import LiveTask
from corral.master.service_tasks import (
    RESTART,
    SCALE,
    START,
    STOP,
    DeploymentRecord,
    ServiceRecord,
    version_of,
)
from corral.master.state import Change, ClusterState
from corral.spec.services import ServiceSpec
from corral.spec.states import TaskState


def _layers(ids: Sequence[str], deps: dict[str, list[str]]) -> list[list[str]]:
    """``ids`` in steps: each after the ones it depends on (dependencies outside ``ids`` are
    already deployed). Raises Refused on a cycle."""
    left = {i: {d for d in deps.get(i, ()) if d in ids and d != i} for i in ids}
    layers: list[list[str]] = []
    while left:
        ready = sorted(i for i, d in left.items() if not d)
        if not ready:
            cycle = " -> ".join(sorted(left))
            raise Refused([Refusal(("dependencies",), f"dependency cycle among {cycle}")])
        layers.append(ready)
        for i in ready:
            del left[i]
        for d in left.values():
            d.difference_update(ready)
    return layers


class Locked(Conflict):
    """A change of services that running deployments hold; ``deployments`` are their ids."""

    def __init__(self, message: str, deployments: Sequence[str]) -> None:
        super().__init__(message)
        self.deployments = list(deployments)


class ServiceOps:
    """Service operations on top of ``ClusterState``; the live records of services and of
    running deployments."""

    def __init__(self, state: ClusterState) -> None:
        self.state = state
        self.applier: Applier  # set by the master: the applier needs these records in turn
        self.services: dict[str, ServiceRecord] = {}
        self.deployments: dict[str, DeploymentRecord] = {}
        self.wake = asyncio.Event()  # the service loop: something changed
        self._last_version = ""

    def load(self) -> None:
        """Fill the records from the store."""
        for row in self.state.store.services():
            self.services[row["id"]] = ServiceRecord.from_row(row)
            self._last_version = max(self._last_version, row["version"])
        for row in self.state.store.deployments(state="RUNNING", limit=10_000):
            self.deployments[row["id"]] = DeploymentRecord.from_row(row)

    def get(self, service_id: str) -> ServiceRecord:
        """A service; ``NotFound`` if there is none of that id."""
        found = self.services.get(service_id)
        if found is None:
            raise NotFound(f"service {service_id!r} not found")
        return found

    def locks(self, service_id: str) -> list[str]:
        """Running deployments that involve a service."""
        return sorted(d.id for d in self.deployments.values() if service_id in d.affected)

    def _version(self, now: float) -> str:
        v = version_of(now)
        while v <= self._last_version:  # two changes in one millisecond: keep versions distinct
            now += 0.001
            v = version_of(now)
        self._last_version = v
        return v

    # --- deploying

    def deploy(
        self,
        specs: Sequence[ServiceSpec],
        owner: str,
        *,
        group: str = "",
        remove: Iterable[str] = (),
        restart: Iterable[str] = (),
        force: bool = False,
    ) -> DeploymentRecord:
        """Create or change ``specs`` and delete ``remove`` in one deployment; a new service is
        ``owner``'s, counted to ``group``. Services in ``restart`` get a new configuration even
        if unchanged. ``Conflict`` while another
        deployment holds one of them (unless ``force``, which cancels it where it stands);
        ``Refused`` if the cluster cannot run a spec."""
        removing = sorted(set(remove))
        for sid in removing:
            self.get(sid)
        self._admit(specs, removing)
        affected = [s.id for s in specs] + removing
        if len(set(affected)) != len(affected):
            raise Conflict("a service is named twice in one deployment")
        blocking = sorted({d for sid in affected for d in self.locks(sid)})
        if blocking and not force:
            raise Locked(
                "App is locked by one or more deployments. Override with the option "
                f"'?force=true'. Then, the deployments {', '.join(blocking)} are cancelled.",
                blocking,
            )
        now = self.state.clock.now()
        version = self._version(now)
        restarts = set(restart)
        actions: dict[str, str] = {sid: STOP for sid in removing}
        for spec in specs:
            old = self.services.get(spec.id)
            if old is None:
                actions[spec.id] = START
            elif spec.id in restarts or not old.spec.same_config(spec):
                actions[spec.id] = RESTART
            else:
                actions[spec.id] = SCALE
        deps = {s.id: list(s.dependencies) for s in specs}
        steps = [[{"action": STOP, "app": sid} for sid in removing]] if removing else []
        steps += [
            [{"action": actions[sid], "app": sid} for sid in layer]
            for layer in _layers([s.id for s in specs], deps)
        ]
        dep = DeploymentRecord(
            id=str(uuid.uuid4()),
            version=version,
            steps=steps,
            current_step=0,
            previous={sid: getattr(self.services.get(sid), "version", None) for sid in affected},
            created_at=now,
        )
        with self.state.change() as ch:
            for d in blocking:
                self.finish(ch, self.deployments[d], "CANCELLED", "cancelled by a forced change")
            for spec in specs:
                self._store_spec(ch, spec, (owner, group), actions[spec.id], version, now)
            for sid in removing:
                self._remove(ch, sid, now)
            ch.tx.insert_deployment(
                id=dep.id,
                version=version,
                state="RUNNING",
                steps=steps,
                current_step=0,
                previous=dep.previous,
                created_at=now,
                reason="",
            )
            ch.tx.add_event(
                time=now,
                type="deployment_started",
                job=dep.job,
                data={"id": dep.id, "version": version, "steps": steps, "services": affected},
            )
            ch.after(lambda: self.deployments.__setitem__(dep.id, dep))
            ch.after(self.wake.set)
        return dep

    def _admit(self, specs: Sequence[ServiceSpec], removing: Sequence[str]) -> None:
        found: list[Refusal] = []
        known = (set(self.services) | {s.id for s in specs}) - set(removing)
        for spec in specs:
            found.extend(task_refusals(spec.task, self.state.agents.values()))
            for i, d in enumerate(spec.dependencies):
                if d not in known:
                    found.append(Refusal(("dependencies", i), f"unknown service {d!r}"))
        if found:
            raise Refused(found)

    def _store_spec(
        self,
        ch: Change,
        spec: ServiceSpec,
        owned: tuple[str, str],  # a new service's owner and their group
        action: str,
        version: str,
        now: float,
    ) -> None:
        owner, group = owned
        old = self.services.get(spec.id)
        doc = spec.model_dump(mode="json")
        if old is None:
            rec = ServiceRecord(spec.id, owner, spec, version, 1, version, now)
            ch.tx.insert_service(
                id=spec.id,
                owner=owner,
                owner_group=group,
                spec=doc,
                version=version,
                config=1,
                config_version=version,
                created_at=now,
                updated_at=now,
                next_slot=0,
                failures=0,
            )
            data = {"owner": owner, "group": group}
            ch.tx.add_event(time=now, type="service_created", job=spec.id, data=data)
        else:
            rec = replace(old, spec=spec, version=version)
            if action == RESTART:  # a new configuration starts without the old backoff
                rec.config, rec.config_version = old.config + 1, version
                rec.failures, rec.delay_until = 0, None
            ch.tx.update_service(
                spec.id,
                spec=doc,
                version=version,
                config=rec.config,
                config_version=rec.config_version,
                updated_at=now,
                failures=rec.failures,
                delay_until=rec.delay_until,
            )
            ch.tx.add_event(time=now, type="service_updated", job=spec.id, data={"action": action})
        ch.tx.insert_service_version(
            service=spec.id, version=version, config=rec.config, spec=doc, created_at=now
        )
        ch.after(lambda: self.services.__setitem__(spec.id, rec))

    def _remove(self, ch: Change, service_id: str, now: float) -> None:
        ch.tx.delete_service(service_id)
        ch.tx.add_event(time=now, type="service_deleted", job=service_id)
        ch.after(lambda: self._forget(service_id))

    def _forget(self, service_id: str) -> None:
        self.services.pop(service_id, None)

    def _forget_deployment(self, deployment_id: str) -> None:
        self.deployments.pop(deployment_id, None)

    # --- what the API offers on top of deploy

    def scale(self, service_id: str, instances: int, force: bool = False) -> DeploymentRecord:
        """Change the number of instances; restarts nothing."""
        rec = self.get(service_id)
        spec = rec.spec.model_copy(update={"instances": instances})
        return self.deploy([spec], rec.owner, force=force)

    def restart(self, service_id: str, force: bool = False) -> DeploymentRecord:
        """Replace every task, rolling, by the upgrade strategy."""
        rec = self.get(service_id)
        return self.deploy([rec.spec], rec.owner, restart=[service_id], force=force)

    def delete(self, service_id: str, force: bool = False) -> DeploymentRecord:
        """Delete a service; its tasks are stopped."""
        return self.deploy([], "", remove=[service_id], force=force)

    def cancel(self, deployment_id: str, force: bool = False) -> DeploymentRecord | None:
        """Cancel a running deployment. With ``force`` it stops where it stands; otherwise a
        new deployment rolls every service it touched back (answered)."""
        dep = self.deployments.get(deployment_id)
        if dep is None:
            row = self.state.store.deployment(deployment_id)
            if row is not None:
                raise Conflict(f"deployment {deployment_id} has already ended: {row['state']}")
            raise NotFound(f"deployment {deployment_id!r} not found")
        with self.state.change() as ch:
            self.finish(ch, dep, "CANCELLED", "cancelled" if force else "rolled back")
        if force:
            return None
        back: list[ServiceSpec] = []
        remove: list[str] = []
        for sid, version in dep.previous.items():
            if version is None:
                if sid in self.services:
                    remove.append(sid)
                continue
            row = self.state.store.service_version(sid, version)
            if row is not None:
                back.append(ServiceSpec.stored(row["spec"]))
        owner = next((self.services[s.id].owner for s in back if s.id in self.services), "")
        return self.deploy(back, owner, remove=remove, force=True)

    def finish(self, ch: Change, dep: DeploymentRecord, state: str, reason: str) -> None:
        """End a deployment (in ``ch``)."""
        now = self.state.clock.now()
        ch.tx.update_deployment(dep.id, state=state, finished_at=now, reason=reason)
        ch.tx.add_event(
            time=now,
            type="deployment_finished",
            job=dep.job,
            state=state,
            reason=reason,
            data={"id": dep.id, "version": dep.version, "services": sorted(dep.affected)},
        )
        ch.after(lambda: self._forget_deployment(dep.id))
        ch.after(self.wake.set)

    def kill_tasks(self, task_ids: Sequence[str], scale: bool, force: bool = False) -> list[str]:
        """Check that the tasks exist and belong to services; with ``scale`` lower each
        service's instances by the number killed. Answers the live ones to stop."""
        victims: list[LiveTask] = []
        for tid in task_ids:
            task = self.state.tasks.get(tid)
            if task is None:
                if self.state.store.task(tid) is None:
                    raise NotFound(f"task {tid!r} not found")
                continue
            if not task.service:
                raise NotFound(f"task {tid!r} is not a task of a service")
            victims.append(task)
        if scale:
            per: dict[str, int] = {}
            for t in victims:
                per[t.job] = per.get(t.job, 0) + 1
            specs = []
            for sid, n in sorted(per.items()):
                rec = self.get(sid)
                fewer = max(0, rec.spec.instances - n)
                specs.append(rec.spec.model_copy(update={"instances": fewer}))
            if specs:
                self.deploy(specs, self.get(specs[0].id).owner, force=force)
        return [t.id for t in victims]

    # --- backoff

    def reset_delay(self, service_id: str) -> None:
        """Forget the backoff: the next replacement starts at once (Marathon's DELETE
        /v2/queue/{app}/delay)."""
        rec = self.get(service_id)
        waiting = [
            t
            for t in self.state.tasks.values()
            if t.job == service_id and t.state is TaskState.PENDING and t.not_before is not None
        ]
        with self.state.change() as ch:
            ch.tx.update_service(service_id, failures=0, delay_until=None)
            self.applier.start_now(ch, waiting)
            ch.after(lambda: setattr(rec, "delay_until", None))
            ch.after(lambda: setattr(rec, "failures", 0))
            ch.after(self.wake.set)
