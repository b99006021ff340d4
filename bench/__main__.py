"""``python -m bench``: dli-monitor's costs, each against a floor measured in the same run.

Runs the simulator in a subprocess on loopback (so its CPU is not counted as ours), prints a
table, and ends with one JSON line of every figure. ``--smoke`` runs tiny sizes, for CI.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any, cast

import aiohttp
import anyio
import orjson
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics import exposition as openmetrics_exposition
from pydantic import SecretStr

from bench import memory
from bench.common import (
    AK,
    CONCURRENCY,
    LISTING_CONCURRENCY,
    PROJECT,
    SK,
    figures,
    make_client,
    row,
    rss,
    simulator,
)
from bench.memory import pages_of
from bench.targets import bench_targets
from monitor.dli.auth import AkSkSigner, OutgoingRequest, canonical_query
from monitor.dli.client import ClientHooks, RetryBudget
from monitor.dli.models import Job, JobState, parse_list_page
from monitor.events import EventLog, configure_logging
from monitor.exposition import Encoder, Exposition
from monitor.metrics import Metrics, Scope, TargetMetrics
from monitor.paging import Query, list_all
from monitor.poller import QueuePoller, Target
from monitor.snapshot import JobSnapshot, Observation, StateSummary, Transition
from monitor.strategy import StrategySetting

LATENCY = 0.02


def best(fn: Callable[[], object], repeat: int = 5) -> float:
    """Best wall time of ``repeat`` runs (the least disturbed by the rest of the machine)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_parse_diff(jobs: int) -> None:
    print(f"\n1. parse + diff of {jobs:,} job records (pages of 100)")
    pages = pages_of(jobs)
    floor = best(lambda: [orjson.loads(p) for p in pages])
    stdlib = best(lambda: [json.loads(p) for p in pages])
    parse = best(lambda: [parse_list_page(p) for p in pages])
    listed = {j.id: j for p in pages for j in parse_list_page(p).jobs}
    previous = JobSnapshot.baseline(listed.values(), now_ms=0)

    def parse_and_diff() -> None:
        fresh = {j.id: j for p in pages for j in parse_list_page(p).jobs}
        previous.diff(Observation(fresh), now_ms=1).snapshot.summary  # noqa: B018

    total = best(parse_and_diff, repeat=3)
    per = total / jobs
    row("floor: orjson.loads of the same pages", f"{floor / jobs * 1e9:.0f} ns/rec", "1.00x")
    row(
        "json.loads (stdlib) of the same pages",
        f"{stdlib / jobs * 1e9:.0f} ns/rec",
        f"{stdlib / floor:.2f}x",
    )
    row("parse_list_page", f"{parse / jobs * 1e9:.0f} ns/rec", f"{parse / floor:.2f}x")
    row(
        "parse + diff + summary",
        f"{per * 1e9:.0f} ns/rec",
        f"{total / floor:.2f}x",
        f"{jobs / total:,.0f} records/s; target 0.8x",
    )
    figures.update(
        parse_ns_per_record=round(parse / jobs * 1e9),
        parse_diff_ns_per_record=round(per * 1e9),
        parse_diff_vs_orjson=round(total / floor, 2),
        orjson_ns_per_record=round(floor / jobs * 1e9),
        json_loads_vs_orjson=round(stdlib / floor, 2),
    )


def bench_memory(jobs: int) -> None:
    print(f"\n4. memory per tracked job ({jobs:,} jobs)")
    spawn = multiprocessing.get_context("spawn")
    for label, active, key in (
        ("every state alike", None, ""),
        ("500 active, the rest history", 500, "_history"),
    ):
        with ProcessPoolExecutor(1, mp_context=spawn) as pool:
            m = pool.submit(memory.held, jobs, active).result()
        row(
            f"{label} ({m['active']:,.0f} active)",
            f"{m['traced']:.0f} B/job",
            f"{m['traced'] / m['floor']:.2f}x",
            f"RSS {m['rss']:.0f} B/job; floor (ids in a dict) {m['floor']:.0f} B/job",
        )
        figures[f"bytes_per_job_tracemalloc{key}"] = round(m["traced"])
        figures[f"bytes_per_job_rss{key}"] = round(m["rss"])
        figures[f"bytes_per_job_vs_floor{key}"] = round(m["traced"] / m["floor"], 2)


class _Clock:
    now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


clock = _Clock()


def _poll_round(target: TargetMetrics, names: list[str], at: float) -> None:
    """What a round of polls changes: every queue's self metrics, and a job that finished in
    one queue out of ten (and the clock, which ages the oldest jobs)."""
    clock.now = at
    for i, name in enumerate(names):
        target.poll_succeeded(name, at)
        target.poll_took(name, 0.05)
        if i % 10 == 0:
            job = Job(f"job-{at}-{i}", JobState.SUCCESS, name, duration_ms=600_000)
            target.record(
                name, Transition(job, JobState.RUNNING, JobState.SUCCESS, False, 300, 600_000)
            )


def bench_render(queues: int) -> None:
    print(f"\n5a. /metrics render with {queues} queues")
    metrics = Metrics("bench", clock=clock)
    scope = Scope(PROJECT)
    target = metrics.for_scope(scope)
    names = [f"queue{i:03d}" for i in range(queues)]
    for name in names:
        target.init_queue(name)
        target.init_target(name)
    counts = {(n, s): 10 for n in names for s in JobState}

    class View:
        scope = Scope(PROJECT)
        export_queues = names
        summary = StateSummary(counts, {(n, JobState.RUNNING): 1_700_000_000_000 for n in names})
        tracked_jobs = 10 * queues * 5

    metrics.add_views(lambda: [View()])
    openmetrics = cast(
        "Callable[[CollectorRegistry], bytes]", openmetrics_exposition.generate_latest
    )
    start = time.perf_counter()
    body = metrics.expose(generate_latest, openmetrics=False)
    cold = time.perf_counter() - start
    assert body == generate_latest(metrics.registry), "the same bytes as prometheus-client's"
    lines = [ln for ln in body.decode().splitlines() if not ln.startswith("#")]
    floor = best(lambda: "\n".join(f"{ln}" for ln in lines).encode(), repeat=10)
    reference = best(lambda: generate_latest(metrics.registry), repeat=3)
    reference_om = best(lambda: openmetrics(metrics.registry), repeat=3)
    at = iter(range(1_800_000_000, 1_900_000_000))
    changes = best(lambda: _poll_round(target, names, next(at)), repeat=10)

    def after_a_poll(fmt: Encoder, *, om: bool) -> float:
        def run() -> None:
            _poll_round(target, names, next(at))
            metrics.expose(fmt, openmetrics=om)

        return best(run, repeat=10) - changes

    text, om = after_a_poll(generate_latest, om=False), after_a_poll(openmetrics, om=True)
    row("floor: joining the same sample lines", f"{floor * 1e3:.2f} ms", "1.00x")
    row(
        "prometheus-client's generate_latest (before)",
        f"{reference * 1e3:.1f} ms",
        f"{reference / floor:.1f}x",
        f"OpenMetrics {reference_om * 1e3:.1f} ms; {len(lines):,} samples, {len(body) >> 10} KiB",
    )
    row("first render (every series)", f"{cold * 1e3:.1f} ms", f"{cold / floor:.1f}x")
    row(
        "render after a round of polls, text",
        f"{text * 1e3:.2f} ms",
        f"{text / floor:.2f}x",
        f"OpenMetrics {om * 1e3:.2f} ms; the round's own changes {changes * 1e3:.2f} ms",
    )
    exposition = Exposition(metrics, max_age=30)
    exposition.render("", "")
    cached = best(lambda: exposition.render("", ""), repeat=10)
    row(
        "a scrape between polls (rendered once per change)",
        f"{cached * 1e6:.1f} µs",
        f"{cached / floor:.4f}x",
        "served from the last rendering",
    )
    figures.update(
        render_ms_200_queues=round(text * 1e3, 2),
        render_openmetrics_ms_200_queues=round(om * 1e3, 2),
        render_cold_ms_200_queues=round(cold * 1e3, 2),
        render_prometheus_client_ms_200_queues=round(reference * 1e3, 2),
        render_samples=len(lines),
        cached_scrape_us=round(cached * 1e6, 1),
    )


async def _ours(url: str, queues: list[str]) -> int:
    async with aiohttp.ClientSession() as session:
        client = make_client(session, url, concurrency=LISTING_CONCURRENCY)
        requests = 0
        for queue in queues:
            # Steady state: the daemon pages by total once a pass has shown it matches the rows.
            listing = await list_all(
                client, Query(queue), page_size=100, trust_total=True, budget=RetryBudget()
            )
            requests += listing.requests
        return requests


def measure(fn: Callable[[], object]) -> tuple[float, float, object]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def sdk_listing(url: str, queue: str) -> int:
    """The listing as a user would script it with the official SDK: its own paging loop."""
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkdli.v1 import DliClient, ListSparkJobsRequest

    client = (
        DliClient.new_builder()
        .with_credentials(BasicCredentials(AK, SK, PROJECT))
        .with_endpoints([url])
        .build()
    )
    offset = requests = 0
    while True:
        resp = client.list_spark_jobs(
            ListSparkJobsRequest(queue_name=queue, _from=offset, size=100)
        )
        requests += 1
        offset += len(resp.sessions or [])
        if not resp.sessions or offset >= resp.total:
            return requests


class _BareClient:
    """The floor of a request to this server: signed and read with aiohttp, and nothing else
    (no parsing, no paging rules, no retries, no metrics)."""

    def __init__(self, session: aiohttp.ClientSession, url: str, in_flight: int) -> None:
        self._session, self._url = session, url
        self._signer = AkSkSigner.from_keys(AK, SecretStr(SK), project_id=PROJECT)
        self._host = url.removeprefix("http://")
        self._slots = anyio.Semaphore(in_flight)

    async def get(self, query: tuple[tuple[str, str], ...]) -> None:
        path = f"/v2.0/{PROJECT}/batches"
        async with self._slots:
            request = OutgoingRequest("GET", self._host, path, query)
            headers = await self._signer.headers(request)
            target = f"{self._url}{path}?{canonical_query(query)}"
            async with self._session.get(target, headers=headers) as resp:
                assert resp.status == 200, resp.status
                await resp.read()


async def _bare(url: str, queue: str, pages: int) -> int:
    """The same pages as a full listing, signed and read at the same concurrency."""
    async with aiohttp.ClientSession() as session, anyio.create_task_group() as tg:
        bare = _BareClient(session, url, LISTING_CONCURRENCY)
        for page in range(pages):
            query = (("from", str(page * 100)), ("queue_name", queue), ("size", "100"))
            tg.start_soon(bare.get, query)
    return pages


async def _bare_steady(url: str, queues: list[str], since_ms: int, rounds: int) -> list[float]:
    """The requests of a quiet incremental poll of every queue, signed and read, no more: the
    three active states, the two terminal counts and the recent jobs, concurrently per queue;
    CPU seconds per round, in one session (as the daemon's)."""
    cpu = []
    async with aiohttp.ClientSession() as session:
        bare = _BareClient(session, url, CONCURRENCY)
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


def bench_listing(sizes: list[int], with_sdk: bool) -> None:
    for jobs in sizes:
        print(f"\n2. full listing of {jobs:,} jobs, {LATENCY * 1e3:.0f} ms latency per request")
        with simulator(jobs, 1, LATENCY) as url:
            wall, cpu, requests = measure(lambda: anyio.run(_ours, url, ["q0"]))
            assert isinstance(requests, int)
            pages = -(-jobs // 100)
            fwall, fcpu, _ = measure(lambda: anyio.run(_bare, url, "q0", pages))  # noqa: B023 - called at once
            ideal = requests * LATENCY / LISTING_CONCURRENCY
            row(
                "ideal: requests x latency / concurrency",
                f"{ideal:.2f} s",
                "1.00x",
                f"{requests} requests, {LISTING_CONCURRENCY} in flight",
            )
            row(
                "floor: the same pages signed and read, no more",
                f"{fwall:.2f} s",
                f"{fwall / ideal:.2f}x",
                f"CPU {fcpu:.2f} s; the rest of ideal is the server's own time",
            )
            row(
                "dli-monitor",
                f"{wall:.2f} s",
                f"{wall / ideal:.2f}x",
                f"{wall / fwall:.2f}x the floor; CPU {cpu:.2f} s",
            )
            figures[f"list_{jobs}_floor_wall_s"] = round(fwall, 3)
            figures[f"list_{jobs}_vs_floor"] = round(wall / fwall, 2)
            figures[f"list_{jobs}_wall_s"] = round(wall, 3)
            figures[f"list_{jobs}_vs_ideal"] = round(wall / ideal, 2)
            figures[f"list_{jobs}_cpu_s"] = round(cpu, 3)
            figures[f"list_{jobs}_requests"] = requests
            if with_sdk:
                print("3. the same listing with the official SDK (huaweicloudsdkdli)")
                swall, scpu, sreq = measure(lambda: sdk_listing(url, "q0"))
                row(
                    "huaweicloudsdkdli, sequential paging",
                    f"{swall:.2f} s",
                    f"{swall / wall:.1f}x slower",
                    f"CPU {scpu:.2f} s = {scpu / cpu:.1f}x ours; {sreq} requests",
                )
                row(
                    "CPU per job listed: SDK / dli-monitor",
                    f"{scpu / jobs * 1e6:.1f} µs",
                    f"{cpu / jobs * 1e6:.1f} µs",
                    f"floor (signed and read only) {fcpu / jobs * 1e6:.1f} µs",
                )
                figures[f"sdk_list_{jobs}_cpu_us_per_job"] = round(scpu / jobs * 1e6, 2)
                figures[f"list_{jobs}_cpu_us_per_job"] = round(cpu / jobs * 1e6, 2)
                figures[f"sdk_list_{jobs}_wall_ratio"] = round(swall / wall, 2)
                figures[f"sdk_list_{jobs}_cpu_ratio"] = round(scpu / cpu, 2)


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
            QueuePoller(Target(q), client, events, metrics, interval=30, strategy=strategy)
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
        f"{cpu / floor:.2f}x",
        f"{requests} requests",
    )
    row(
        "CPU share of one core at a 30 s interval",
        f"{pct:.2f} %",
        f"{cpu / floor:.2f}x",
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


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks it runs")
    parser.add_argument(
        "--history",
        type=int,
        metavar="N",
        help="only figure 6, with N finished jobs (e.g. 1000000: about 2 minutes)",
    )
    args = parser.parse_args()
    if args.history:
        bench_requests_per_poll(args.history, 500, rounds=4)
        print("\n" + json.dumps(figures, sort_keys=True))
        return
    small = args.smoke
    print(f"dli-monitor bench ({'smoke' if small else 'full'}) on {os.cpu_count()} cores")
    bench_parse_diff(2_000 if small else 100_000)
    bench_listing([1_000] if small else [10_000, 100_000], with_sdk=True)
    bench_memory(2_000 if small else 100_000)
    bench_render(20 if small else 200)
    bench_steady(5 if small else 50, 100 if small else 2_000, 2 if small else 20)
    bench_requests_per_poll(2_000 if small else 100_000, 50 if small else 500)
    bench_targets(2 if small else 10, 5 if small else 100, 20 if small else 200, 2 if small else 5)
    print("\n" + json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    main()
