"""7. Many queues across many targets: CPU per polling round and memory, through the daemon's
own poll path, one client per target (each with its own limiter, as in production)."""

from __future__ import annotations

import gc
import io
import time
from contextlib import ExitStack

import aiohttp
import anyio

from bench.common import figures, make_client, row, rss, simulator
from monitor.output.events import EventLog, configure_logging
from monitor.output.metrics import Metrics
from monitor.output.scope import Scope
from monitor.poll.poller import PolledQueue, PollOutput, PollSettings, QueuePoller
from monitor.poll.strategy import IncrementalStrategy

__all__ = ["bench_targets"]


async def _rounds(urls: dict[str, str], queues: int, rounds: int) -> list[tuple[float, int, int]]:
    """Every queue of every target polled ``rounds`` times; per round (CPU s, tracked jobs,
    queues whose next poll is incremental)."""
    configure_logging("json", io.StringIO())
    metrics = Metrics("bench")
    results = []
    async with aiohttp.ClientSession() as session:
        pollers = []
        for project, url in urls.items():
            client = make_client(session, url, project=project)
            scope = metrics.for_scope(Scope(project))
            events = EventLog(project)
            pollers += [
                QueuePoller(
                    PolledQueue(f"q{i}"),
                    client,
                    PollOutput(events, scope),
                    PollSettings(30, strategy="auto"),
                )
                for i in range(queues)
            ]
        for _ in range(rounds):
            cpu = time.process_time()
            async with anyio.create_task_group() as tg:  # the targets poll side by side
                for poller in pollers:
                    tg.start_soon(poller.poll)
            tracked = sum(p.tracked_jobs for p in pollers)
            incremental = sum(isinstance(p.strategy, IncrementalStrategy) for p in pollers)
            results.append((time.process_time() - cpu, tracked, incremental))
    return results


def bench_targets(targets: int, queues: int, jobs: int, active: int) -> None:
    """``targets`` projects (one simulator subprocess each) of ``queues`` queues, each queue with
    ``jobs`` jobs of which ``active`` are active."""
    total = targets * queues
    print(
        f"\n7. {total:,} queues across {targets} targets ({jobs} jobs, {active} active per "
        "queue), auto strategy"
    )
    with ExitStack() as stack:
        urls = {
            f"benchproject{t}": stack.enter_context(
                simulator(
                    jobs * queues, queues, 0.0, active=active * queues, project=f"benchproject{t}"
                )
            )
            for t in range(targets)
        }
        gc.collect()
        before = rss()
        rounds = anyio.run(_rounds, urls, queues, 3)
        grown = rss() - before
    (first_cpu, _, _), (cpu, tracked, incremental) = rounds[0], rounds[-1]
    pct = cpu / 30 * 100
    row("first round (full listings)", f"{first_cpu:.2f} s CPU", "", f"{total:,} polls")
    row("third round", f"{cpu:.3f} s CPU", "", f"{cpu / total * 1e3:.2f} ms/queue")
    row(
        "  queues polled incrementally next", f"{incremental:,}", "", "auto: small queues stay full"
    )
    row("CPU share of one core at a 30 s interval", f"{pct:.2f} %", "", f"{total:,} queues")
    row(
        "memory (RSS growth)",
        f"{grown / 2**20:.0f} MiB",
        "",
        f"{tracked:,} jobs tracked: {grown / max(tracked, 1):.0f} B/job with clients and series",
    )
    figures.update(
        targets_queues=total,
        targets_steady_cpu_s=round(cpu, 3),
        targets_steady_cpu_pct_at_30s=round(pct, 2),
        targets_rss_mib=round(grown / 2**20, 1),
        targets_tracked_jobs=tracked,
    )
