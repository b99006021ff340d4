"""Figure 4's measurement, run in a fresh process so nothing an earlier figure freed is
reused: bytes per job of a baseline snapshot."""

from __future__ import annotations

import gc
import tracemalloc

import orjson

from bench.common import PROJECT, rss
from monitor.core.snapshot import JobSnapshot
from monitor.dli.models import parse_list_page
from monitor.simulator.world import Lifecycle, World

__all__ = ["STILL", "held", "pages_of"]

STILL = Lifecycle(
    starting=(1e6, 2e6), running=(1e6, 2e6), recovering=(1e6, 2e6), arrival_interval=0
)


def pages_of(jobs: int, page_size: int = 100, active: int | None = None) -> list[bytes]:
    """A listing of ``jobs`` jobs in one queue, in every state alike unless ``active`` says
    how many are active."""
    now = 1_795_000_000_000
    world = World(
        PROJECT,
        ("q",),
        seed=1,
        now_ms=now,
        lifecycle=STILL,
        initial_jobs=jobs,
        initial_active=active,
        history_limit=10**9,
    )
    rows = [j.row(now) for j in world.select(queue="q")]
    return [
        orjson.dumps({"from": i, "total": len(rows), "sessions": rows[i : i + page_size]})
        for i in range(0, len(rows), page_size)
    ]


def held(jobs: int, active: int | None) -> dict[str, float]:
    """Bytes per job of a baseline snapshot: traced by tracemalloc, the process's RSS growth
    without tracemalloc, and the floor: a dict of the same ids to ``None``."""
    pages = pages_of(jobs, active=active)

    def build() -> JobSnapshot:
        # page by page, as a listing arrives: no moment holds every parsed job at once
        return JobSnapshot.baseline((j for p in pages for j in parse_list_page(p).jobs), now_ms=0)

    gc.collect()
    rss0 = rss()
    snap = build()
    gc.collect()
    grown = rss() - rss0
    ids = list(snap)
    del snap
    gc.collect()
    tracemalloc.start()
    snap = build()
    gc.collect()
    traced, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    n_active = sum(1 for t in snap.values() if not t.state.terminal)
    del snap
    gc.collect()
    tracemalloc.start()
    floor = {i.encode().decode(): None for i in ids}  # fresh strings, as the snapshot's are
    floor_traced, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del floor
    return {
        "traced": traced / jobs,
        "rss": grown / jobs,
        "floor": floor_traced / jobs,
        "active": n_active,
    }
