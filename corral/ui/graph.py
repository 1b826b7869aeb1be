"""A job's dependency graph: its ancestors and descendants, laid out top to bottom in layers
(parents above children) with coordinates an SVG template can draw as they are."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

Lookup = Callable[[str], tuple[list[str], list[str]] | None]
"""A job's (parents, children), or None when no such job exists."""

NODE_W, NODE_H = 184, 38
COL_GAP, ROW_GAP = 24, 44
PAD = 8
MAX_LABEL = 22  # characters; the full name is in the node's tooltip


@dataclass(frozen=True)
class Node:
    """A job in the drawing; ``x``/``y`` are its top left corner."""

    name: str
    x: int
    y: int
    current: bool  # the job whose page this is
    missing: bool  # named as a parent but not (or no longer) a job

    @property
    def label(self) -> str:
        """The name, shortened to fit the box."""
        n = self.name
        return n if len(n) <= MAX_LABEL else n[: MAX_LABEL - 1] + "…"


@dataclass(frozen=True)
class Edge:
    """``parent`` must succeed before ``child`` runs; ``path`` is the SVG path of the arrow."""

    parent: str
    child: str
    path: str


@dataclass(frozen=True)
class Graph:
    """Nodes and edges with the size of the drawing."""

    nodes: list[Node]
    edges: list[Edge]
    width: int
    height: int


def _walk(name: str, lookup: Lookup, limit: int) -> tuple[dict[str, list[str]], set[str]]:
    """Ancestors and descendants of ``name`` (at most ``limit`` jobs): each job's parents within
    the walk, and the names that are not jobs."""
    parents: dict[str, list[str]] = {}
    missing: set[str] = set()
    seen = {name}
    queue = deque([(name, 0)])  # direction: 0 the job itself, -1 going up, +1 going down
    while queue:
        job, direction = queue.popleft()
        found = lookup(job)
        if found is None:
            missing.add(job)
            parents[job] = []
            continue
        ups, downs = found
        parents[job] = ups
        steps = ([(p, -1) for p in ups] if direction <= 0 else []) + (
            [(c, 1) for c in downs] if direction >= 0 else []
        )
        for other, way in steps:
            if other not in seen and len(seen) < limit:
                seen.add(other)
                queue.append((other, way))
    # A descendant may have parents outside the walk; only draw edges between drawn jobs.
    return {j: [p for p in ps if p in parents] for j, ps in parents.items()}, missing


def _layers(parents: dict[str, list[str]]) -> list[list[str]]:
    """Longest-path layering: every job sits one layer below its lowest parent."""
    depth: dict[str, int] = {}
    pending = {j: set(ps) for j, ps in parents.items()}
    ready = sorted(j for j, ps in pending.items() if not ps)
    while ready:
        job = ready.pop(0)
        depth[job] = max((depth[p] + 1 for p in parents[job] if p in depth), default=0)
        for other in sorted(pending):
            if job in pending[other]:
                pending[other].discard(job)
                if not pending[other] and other not in depth:
                    ready.append(other)
    for job in parents:  # a cycle (which the API refuses) still gets drawn
        depth.setdefault(job, 0)
    layers: list[list[str]] = [[] for _ in range(max(depth.values(), default=0) + 1)]
    for job in sorted(depth):
        layers[depth[job]].append(job)
    return layers


def _order(layers: list[list[str]], parents: dict[str, list[str]]) -> None:
    """Sort each layer by the mean position of the jobs' parents, to keep edges short."""
    pos: dict[str, float] = {j: i for i, j in enumerate(layers[0])}
    for layer in layers[1:]:
        layer.sort(
            key=lambda j: (
                sum(pos.get(p, 0) for p in parents[j]) / max(len(parents[j]), 1),
                j,
            )
        )
        pos.update({j: i for i, j in enumerate(layer)})


def layout(name: str, lookup: Lookup, limit: int = 40) -> Graph:
    """The graph around job ``name``, each layer centred under the widest one."""
    parents, missing = _walk(name, lookup, limit)
    layers = _layers(parents)
    _order(layers, parents)
    widest = max(len(layer) for layer in layers)
    width = 2 * PAD + widest * NODE_W + (widest - 1) * COL_GAP
    height = 2 * PAD + len(layers) * NODE_H + (len(layers) - 1) * ROW_GAP
    boxes: dict[str, Node] = {}
    for row, layer in enumerate(layers):
        span = len(layer) * NODE_W + (len(layer) - 1) * COL_GAP
        left = (width - span) // 2
        for col, job in enumerate(layer):
            boxes[job] = Node(
                name=job,
                x=left + col * (NODE_W + COL_GAP),
                y=PAD + row * (NODE_H + ROW_GAP),
                current=job == name,
                missing=job in missing,
            )
    edges, lanes = [], 0
    right = max(n.x + NODE_W for n in boxes.values())
    for child, ps in sorted(parents.items()):
        for parent in sorted(ps):
            a, b = boxes[parent], boxes[child]
            x1, y1 = a.x + NODE_W // 2, a.y + NODE_H
            x2, y2 = b.x + NODE_W // 2, b.y - 4  # stop short: the arrow head ends at the box
            if b.y - a.y <= NODE_H + ROW_GAP:  # adjacent layers: one S-curve
                mid = (y1 + y2) // 2
                path = f"M{x1},{y1} C{x1},{mid} {x2},{mid} {x2},{y2}"
            else:  # skips a layer: around the boxes on the right, in a lane of its own
                lane = right + 16 + 12 * lanes
                lanes += 1
                top, bottom = y1 + ROW_GAP // 2, b.y - ROW_GAP // 2
                path = (
                    f"M{x1},{y1} C{x1},{top} {x1},{top} {lane},{top} "
                    f"L{lane},{bottom} C{x2},{bottom} {x2},{bottom} {x2},{y2}"
                )
            edges.append(Edge(parent=parent, child=child, path=path))
    width = max(width, right + 16 + 12 * lanes + PAD) if lanes else width
    nodes = sorted(boxes.values(), key=lambda n: (n.y, n.x))
    return Graph(nodes=nodes, edges=edges, width=width, height=height)
