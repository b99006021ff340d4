"""Figures 5b and 6: rounds of polls through the daemon's own poll path (quiet rounds against
the same requests sent bare, and requests per poll with a long history)."""

from __future__ import annotations

import gc
import io
import time
from typing import Any

import aiohttp
import anyio

from bench.common import (
    CONCURRENCY,
    PROJECT,
    BareClient,
    figures,
    make_client,
    row,
    rss,
    simulator,
)
from monitor.dli.client import ClientHooks
from monitor.output.events import EventLog, configure_logging
from monitor.output.metrics import Metrics
from monitor.output.scope import Scope
from monitor.poll.poller import PolledQueue, PollOutput, PollSettings, QueuePoller
from monitor.poll.strategy import StrategySetting


async def _bare_steady(url: str, queues: list[str], since_ms: int, rounds: int) -> list[float]:
    """The requests of a quiet incremental poll of every queue, signed and read, no more: the
    three active states, the two terminal counts and the recent jobs, concurrently per queue;
    CPU seconds per round, in one session (as the daemon's)."""
    cpu = []
    async with aiohttp.ClientSession() as session:
        bare = BareClient(session, url, CONCURRENCY)
        for _ in range(rounds):
            start = time.process_time()
            for queue in queues:
                base = (("from", "0"), ("queue_name", queue))
                async with anyio.create_task_group() as tg:
                    for state in ("starting", "running", "recovering"):
                        tg.start_soon(bare.get, (*base, ("size", "100"), ("state", state)))
                    for state in ("success", "dead"):
                        tg.start_soon(bare.get, (*base, ("size", "1"), ("state", state)))
                    tg.start_soon(bare.get, (*base, ("size", "100"), ("start", str(since_ms))))
            cpu.append(time.process_time() - start)
    return cpu


async def _daemon_rounds(
    url: str, queues: list[str], strategy: StrategySetting, rounds: int
) -> list[Any]:
    """Poll every queue ``rounds`` times through the daemon's real poll path (events to a null
    stream); per round: (CPU seconds, requests)."""
    configure_logging("json", io.StringIO())
    metrics = Metrics("bench").for_scope(Scope(PROJECT))
    events = EventLog(PROJECT)
    requests = [0]

    def count(endpoint: str, code: str) -> None:
        requests[0] += 1

    results: list[Any] = []
    async with aiohttp.ClientSession() as session:
        client = make_client(session, url, ClientHooks(on_response=count))
        pollers = [
            QueuePoller(
                PolledQueue(q),
                client,
                PollOutput(events, metrics),
                PollSettings(30, strategy=strategy),
            )
            for q in queues
        ]
        for _ in range(rounds):
            cpu, requests[0] = time.process_time(), 0
            for poller in pollers:
                await poller.poll()
            results.append((time.process_time() - cpu, requests[0]))
    return results


def bench_requests_per_poll(history: int, active: int, rounds: int = 3) -> None:
    print(f"\n6. requests per poll: {history:,} finished jobs and {active} active in one queue")
    with simulator(history + active, 1, 0.0, active=active) as url:
        full = anyio.run(_daemon_rounds, url, ["q0"], "full", 2)
        gc.collect()
        before = rss()
        incremental = anyio.run(_daemon_rounds, url, ["q0"], "auto", rounds)
        grown = rss() - before
    full_req, inc_req = full[-1][1], incremental[-1][1]
    row("full listing", f"{full_req} requests", "1.00x", f"CPU {full[-1][0]:.2f} s")
    row(
        "incremental (auto, steady state)",
        f"{inc_req} requests",
        f"{inc_req / full_req:.1%}",
        f"CPU {incremental[-1][0]:.3f} s; target <= 5%",
    )
    row("memory after the quiet polls (RSS growth)", f"{grown / 2**20:.0f} MiB", "", "")
    figures.update(
        requests_full_poll=full_req,
        requests_incremental_poll=inc_req,
        requests_incremental_share=round(inc_req / full_req, 4),
        incremental_poll_cpu_s=round(incremental[-1][0], 4),
        requests_per_poll_rss_mib=round(grown / 2**20, 1),
    )


def bench_steady(queues: int, per_queue: int, active_per_queue: int) -> None:
    print(
        f"\n5b. steady-state polls of {queues} queues x {per_queue:,} jobs "
        f"({active_per_queue} active each), auto strategy, no latency"
    )
    names = [f"q{i}" for i in range(queues)]
    with simulator(queues * per_queue, queues, 0.0, active=queues * active_per_queue) as url:
        # Two full rounds (baseline, then the probe that picks incremental), the first
        # incremental round (which forgets the history), then three quiet rounds.
        rounds = anyio.run(_daemon_rounds, url, names, "auto", 6)
        since = int(time.time() * 1000) - 60_000
        floors = anyio.run(_bare_steady, url, names, since, 4)[1:]
    first_cpu, first_req = rounds[0]
    quiet = sorted(rounds[3:])
    cpu, requests = quiet[len(quiet) // 2]
    floor = sorted(floors)[1]
    pct = cpu / 30 * 100
    # The floor sends an incremental poll's six requests per queue; small queues (--smoke) stay
    # on full listings, and then the two are not the same requests.
    ratio = f"{cpu / floor:.2f}x" if requests == 6 * queues else "n/a"
    row(
        "first poll of every queue (full listings)",
        f"{first_cpu:.2f} s CPU",
        "",
        f"{first_req} requests",
    )
    row(
        "floor: a quiet poll's requests signed and read",
        f"{floor:.3f} s CPU",
        "1.00x",
        f"{6 * queues} requests, {CONCURRENCY} in flight",
    )
    row(
        "quiet poll of every queue (median of 3)",
        f"{cpu:.3f} s CPU",
        ratio,
        f"{requests} requests",
    )
    row(
        "CPU share of one core at a 30 s interval",
        f"{pct:.2f} %",
        ratio,
        f"floor {floor / 30 * 100:.2f} %",
    )
    figures.update(
        steady_cpu_s=round(cpu, 3),
        steady_cpu_pct_at_30s=round(pct, 2),
        steady_floor_cpu_s=round(floor, 3),
        steady_vs_floor=round(cpu / floor, 2),
        steady_requests=requests,
        first_poll_cpu_s=round(first_cpu, 3),
    )
