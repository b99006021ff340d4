"""Vanishing jobs, the shared rate limit as the API sees it, and bounded memory."""

from __future__ import annotations

import io
import time

import anyio
import orjson

from monitor.app.config import Settings
from monitor.app.daemon import Daemon
from monitor.core.jobs import ACTIVE_STATES, JobState
from monitor.core.snapshot import JobSnapshot, Observation
from monitor.dli.models import parse_list_page
from monitor.output.events import configure_logging
from monitor.simulator import Lifecycle, Simulator, World, running_simulator
from tests.harness import STILL, running
from tests.truth import parse_events


def settings(url: str, queues: tuple[str, ...], **kw: object) -> Settings:
    values: dict[str, object] = {
        "project_id": "limits",
        "endpoint": url,
        "queues": queues,
        "poll_interval": 0.2,
        "auth": "none",
        "listen": "127.0.0.1:0",
        "max_rps": 1000,
    }
    return Settings(**{**values, **kw})  # type: ignore[arg-type]


async def test_deleted_active_job_vanishes_once_after_its_detail_says_so() -> None:
    out = io.StringIO()
    configure_logging("json", out)
    world = World(
        "limits", ("etl",), seed=2, now_ms=int(time.time() * 1000), lifecycle=STILL, initial_jobs=10
    )
    victim = next(j for j in world.jobs.values() if j.state is JobState.RUNNING)
    sim = Simulator(world)
    async with running_simulator(sim) as url:
        daemon = Daemon(settings(url, ("etl",)))
        async with running(daemon):
            world.delete(victim.id)
            with anyio.fail_after(10):
                while '"event":"job.vanished"' not in out.getvalue():
                    await anyio.sleep(0.02)
            await anyio.sleep(5 * 0.2)  # five more polls: vanished once, asked about once
    events = parse_events(out.getvalue())
    vanished = [e for e in events if e["event"] == "job.vanished"]
    assert [(e["job_id"], e["last_state"]) for e in vanished] == [(victim.id, "running")]
    assert not [e for e in events if e["event"] == "job.transition"]
    assert daemon.pollers[0].snapshot is not None and victim.id not in daemon.pollers[0].snapshot
    detail_requests = [p for _, p in sim.request_log if p.endswith(victim.id)]
    assert len(detail_requests) == 1, "confirmed once, then forgotten"


def busiest_second(stamps: list[float]) -> int:
    """The most requests that arrived within any one-second window."""
    stamps = sorted(stamps)
    most, lo = 0, 0
    for hi, t in enumerate(stamps):
        while t - stamps[lo] >= 1.0:
            lo += 1
        most = max(most, hi - lo + 1)
    return most


async def test_the_ceiling_holds_in_every_second_at_a_sliding_window_gateway() -> None:
    """10 queues that want 100 requests/s against a gateway that throttles the 21st request in
    any one second: the daemon at max_rps=20 is never throttled, and no second (measured at the
    gateway, from arrival times) sees more than 20 requests."""
    configure_logging("json", io.StringIO())
    queues = tuple(f"q{i}" for i in range(10))
    world = World(
        "limits", queues, seed=3, now_ms=int(time.time() * 1000), lifecycle=STILL, initial_jobs=30
    )
    limit = 20
    sim = Simulator(world, gateway_limit=limit)
    async with running_simulator(sim) as url:
        daemon = Daemon(settings(url, queues, poll_interval=0.1, max_rps=limit))
        async with running(daemon, ready=False):
            await anyio.sleep(4)
    stamps = [t for t, _ in sim.request_log]
    busiest = busiest_second(stamps)
    rate = len(stamps) / (stamps[-1] - stamps[0])
    print(
        f"{len(stamps)} requests, {rate:.1f}/s on average, busiest second {busiest}, "
        f"throttled {sim.gateway_throttled}, for a limit of {limit}"
    )
    assert sim.gateway_throttled == 0
    assert busiest <= limit
    # That the ceiling is not a throttle far below it is shown on a fake clock
    # (test_ratelimit.py); here, that every queue got its turn.
    assert all(p.ready for p in daemon.pollers), "every queue got its turn"


async def test_a_gateway_policy_in_a_429_lowers_the_ceiling_to_it() -> None:
    """A per-minute gateway quota the configuration does not know: its first 429 states the
    policy; from then on the daemon stays within it (one event, the ceiling metric), where
    without it every poll would be throttled until the minute ends."""
    out = io.StringIO()
    configure_logging("json", out)
    queues = ("q0", "q1")
    world = World(
        "limits", queues, seed=4, now_ms=int(time.time() * 1000), lifecycle=STILL, initial_jobs=5
    )
    limit = 12
    sim = Simulator(world, gateway_limit=limit, gateway_window=60)
    async with running_simulator(sim) as url:
        daemon = Daemon(settings(url, queues, poll_interval=0.1, max_concurrency=2))
        async with running(daemon, ready=False):
            with anyio.fail_after(10):
                while '"event":"api.request_ceiling"' not in out.getvalue():
                    await anyio.sleep(0.02)
            throttled = sim.gateway_throttled
            await anyio.sleep(3)  # 30 polls' worth: each would be throttled without the ceiling
        ceiling = daemon.metrics.registry.get_sample_value(
            "dli_monitor_request_ceiling",
            {"project_id": "limits", "region": "", "window_seconds": "60"},
        )
    events = [e for e in parse_events(out.getvalue()) if e["event"] == "api.request_ceiling"]
    assert len(events) == 1
    assert events[0]["policy"] == f"{limit} per minute"
    assert events[0]["ceiling"] == f"1000 per second, {limit} per minute"
    assert ceiling == limit
    # Requests already past the ceiling when the first 429 came may be throttled too (at most
    # one per concurrency slot); none after.
    assert throttled <= 2
    assert sim.gateway_throttled == throttled


def test_snapshot_stays_bounded_over_thousands_of_lifecycles() -> None:
    """Pure: 3 queues, a new job every 0.5 s each for a simulated hour, polled every 10 s."""
    lifecycle = Lifecycle(
        starting=(1, 20), running=(5, 120), recovering=(2, 10), arrival_interval=0.5
    )
    now = 1_795_000_000_000
    world = World(
        "mem",
        ("a", "b", "c"),
        seed=9,
        now_ms=now,
        lifecycle=lifecycle,
        history_limit=200,
        min_retention_ms=60_000,
        initial_jobs=0,
    )
    snap = JobSnapshot.baseline([], now_ms=now)
    peak = 0
    for _ in range(360):
        now += 10_000
        world.advance(now)
        rows = [j.row(now) for j in world.jobs.values()]
        page = parse_list_page(orjson.dumps({"total": len(rows), "sessions": rows}))
        listed = {j.id: j for j in page.jobs}
        gone = frozenset(t.id for t in snap.missing(listed))
        diff = snap.diff(Observation(listed, gone=gone), now_ms=now, tombstone_ttl_ms=600_000)
        snap = diff.snapshot
        peak = max(peak, len(snap) + len(snap.tombstones))
    lifecycles = len({e.job_id for e in world.history})
    active = sum(1 for j in world.jobs.values() if j.state in ACTIVE_STATES)
    print(f"{lifecycles} lifecycles, peak {peak} records (snapshot + tombstones)")
    assert lifecycles > 20_000
    assert len(snap) == len(world.jobs)
    # Bounded by what the API lists plus ten minutes of forgotten ids (6 per second), not by
    # the history, which grows without limit.
    assert peak <= 3 * 200 + active + 6 * 600 + 300
