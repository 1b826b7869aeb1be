"""Endpoints for operators and load balancers: ``/health`` and ``/ping`` are open; ``/metrics``
needs a token that may read (Prometheus: ``authorization: {credentials: TOKEN}``)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest

from corral.api.callers import master_of

router = APIRouter()


@router.get("/health")
def health(request: Request) -> dict[str, str | bool | None]:
    """The process is up and serving; whether it leads, and where the leader answers."""
    master = master_of(request)
    return {"status": "ok", "leading": master.leading, "leader": master.leader_url}


@router.get("/ping", response_class=PlainTextResponse)
def ping() -> str:
    """Marathon's liveness probe."""
    return "pong"


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(request: Request) -> Response:
    """Prometheus metrics of the cluster as the master sees it now."""
    master = master_of(request)
    registry = CollectorRegistry()
    tasks = Gauge("corral_tasks", "Unfinished tasks by state", ["state"], registry=registry)
    for t in master.queries.live_tasks():
        tasks.labels(t.state.value).inc()
    agents = Gauge("corral_agents", "Agents by state", ["state"], registry=registry)
    cpus = Gauge("corral_cpus", "CPUs of connected agents", ["kind"], registry=registry)
    mem = Gauge("corral_mem_mib", "Memory of connected agents (MiB)", ["kind"], registry=registry)
    gpus = Gauge("corral_gpus", "GPUs of connected agents", ["kind"], registry=registry)
    for a in master.queries.agents():
        agents.labels(a.state.value).inc()
        if a.connected:
            cpus.labels("total").inc(a.total.millicpus / 1000)
            cpus.labels("used").inc(a.used.millicpus / 1000)
            mem.labels("total").inc(a.total.mem)
            mem.labels("used").inc(a.used.mem)
            gpus.labels("total").inc(a.total.gpus)
            gpus.labels("used").inc(a.used.gpus)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
