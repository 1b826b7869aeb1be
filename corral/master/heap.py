"""The garbage collector's settings for a master process.

A master holds a record of every task not finished: 100,000 waiting tasks are some 400,000
objects the cycle collector tracks, and a full collection walks them all (a fifth of a second
on a busy 2-core machine). With CPython's default young-generation threshold (700 new
objects), a request that builds a thousand tasks' JSON gets its objects promoted while they are
still in use, and the old generation fills with garbage that only a full collection frees: one
every hundred such requests, each of them a 200 ms stall of the API (measured with
bench/scale.py). A larger young generation lets a request's objects die young, so full
collections come only as the live records really grow.
"""

from __future__ import annotations

import gc

YOUNG = 50_000  # new tracked objects between young collections (CPython's default: 700)


def tune_collector() -> None:
    """Set the collector for a long-running master holding many live records."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG, middle, old)
