"""Figures as a user runs the daemon (issue #22): ``dli-monitor run`` as a process, or the same
:class:`~monitor.app.daemon.Daemon` that ``run`` builds, from a cold start, against the
simulator in another process. Requests are counted where the API sees them (the simulator's
own counter), CPU and memory where the pod sees them (``/proc`` of the daemon's process).
"""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
from prometheus_client.parser import text_string_to_metric_families

from bench.common import AK, LATENCY, LISTING_CONCURRENCY, PROJECT, SK, figures, row, simulator
from bench.listing import bare_pages, sdk_listing
from monitor.simulator.app import STATS_PATH

__all__ = ["bench_as_run"]

TICK = os.sysconf("SC_CLK_TCK")


def _stats(url: str) -> dict[str, int]:
    with urllib.request.urlopen(url + STATS_PATH, timeout=10) as resp:  # noqa: S310 (loopback)
        return json.loads(resp.read())  # type: ignore[no-any-return]


class RunningDaemon:
    """``python -m monitor run`` with ``env`` (and the simulator's keys), its own process."""

    def __init__(self, url: str, **env: str) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        environ = {k: v for k, v in os.environ.items() if not k.startswith("DLI_MONITOR_")}
        settings = {
            "PROJECT_ID": PROJECT, "ENDPOINT": url, "AK": AK, "SK": SK,
            "LISTEN": f"127.0.0.1:{self.port}", "LOG_FORMAT": "json", **env,
        }  # fmt: skip
        environ.update({f"DLI_MONITOR_{k}": v for k, v in settings.items()})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run"],
            env=environ,
            stdout=subprocess.DEVNULL if not os.environ.get("BENCH_DAEMON_STDOUT") else None,
        )

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as r:
                return r.status, r.read().decode()
        except OSError:
            return 0, ""

    def until_ready(self, timeout: float = 600) -> float:
        start = time.monotonic()
        while self.get("/readyz")[0] != 200:
            if time.monotonic() - start > timeout or self.proc.poll() is not None:
                raise RuntimeError("the daemon did not become ready")
            time.sleep(0.05)
        return time.monotonic() - start

    def samples(self, name: str) -> dict[tuple[tuple[str, str], ...], float]:
        _, text = self.get("/metrics")
        return {
            tuple(sorted(s.labels.items())): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == name
        }

    def polls(self) -> float:
        """Polls made so far, of the queue that has polled least."""
        counts = self.samples("dli_monitor_poll_duration_seconds_count")
        return min(counts.values(), default=0)

    def cpu(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime

    def rss(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def until_polls(self, n: float, timeout: float = 300) -> None:
        start = time.monotonic()
        while self.polls() < n:
            if time.monotonic() - start > timeout:
                raise RuntimeError(f"fewer than {n} polls")
            time.sleep(0.05)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


@contextmanager
def running(url: str, **env: str) -> Iterator[RunningDaemon]:
    daemon = RunningDaemon(url, **env)
    try:
        yield daemon
    finally:
        daemon.stop()


def quiet_rounds(url: str, rounds: int, **env: str) -> dict[str, float]:
    """Start the daemon cold, let it settle (two polls), then count the requests and CPU of
    ``rounds`` quiet rounds."""
    start = time.monotonic()
    with running(url, POLL_INTERVAL="1", MAX_CONCURRENCY="8", MAX_RPS="1000", **env) as d:
        d.until_ready()
        first = time.monotonic() - start
        first_requests = _stats(url)["requests"]
        d.until_polls(3)
        polls, requests, cpu = d.polls(), _stats(url)["requests"], d.cpu()
        d.until_polls(polls + rounds)
        polls2, requests2, cpu2 = d.polls(), _stats(url)["requests"], d.cpu()
    done = polls2 - polls
    return {
        "requests": (requests2 - requests) / done,
        "cpu_ms": (cpu2 - cpu) / done * 1000,
        "first_s": first,
        "first_requests": first_requests,
    }


def bench_quiet_rounds(small: bool) -> None:
    print("\nA. requests and CPU per quiet round, `dli-monitor run` from a cold start")
    queues, jobs = (5, 300) if small else (50, 5_000)
    cases = [
        ("filtered total", queues, jobs, ()),
        ("Livy-like total (every job)", queues, jobs, ("--total", "project")),
    ]
    for label, nq, nj, extra in cases:
        # The simulator's --jobs and --active count the whole project.
        with simulator(nq * (nj + 4), nq, 0.0, active=nq * 4, extra=extra) as url:
            names = ",".join(f"q{i}" for i in range(nq))
            m = quiet_rounds(url, 5, QUEUES=names)
        row(
            f"{nq} queues x {nj:,} finished + 4 active, {label}",
            f"{m['requests']:.1f} req",
            "",
            f"CPU {m['cpu_ms']:.1f} ms/round; first poll {m['first_s']:.1f} s, "
            f"{m['first_requests']:,} requests",
        )
        key = "livy" if extra else "filtered"
        figures[f"as_run_requests_per_round_{key}"] = round(m["requests"], 1)
        figures[f"as_run_cpu_ms_per_round_{key}"] = round(m["cpu_ms"], 1)
    nq, nj = (3, 100) if small else (10, 1_000)
    with simulator(nq * nj, nq, 0.0, active=nq * 10) as url:
        m = quiet_rounds(url, 5)
    row(
        f"project-wide (no queues set), {nq} queues x {nj:,}",
        f"{m['requests']:.1f} req",
        "",
        f"CPU {m['cpu_ms']:.1f} ms/round",
    )
    figures["as_run_requests_per_round_project"] = round(m["requests"], 1)


def _first_poll(url: str, queue: str) -> tuple[float, float, int]:
    """Wall and CPU seconds from ``Daemon.run`` to its first applied poll, in this process."""
    from monitor.app.config import Settings
    from monitor.app.daemon import Daemon
    from monitor.output.events import configure_logging

    configure_logging("json", io.StringIO())  # the events are not what is measured
    settings = Settings(
        project_id=PROJECT, endpoint=url, queues=(queue,), ak=AK, sk=SK,
        listen="127.0.0.1:0", max_concurrency=LISTING_CONCURRENCY, max_rps=10_000,
    )  # fmt: skip
    before = _stats(url)["requests"]

    async def main() -> tuple[float, float]:
        daemon = Daemon(settings)
        wall, cpu = time.perf_counter(), time.process_time()
        async with anyio.create_task_group() as tg:
            tg.start_soon(daemon.run)
            while not daemon.ready()[0]:  # noqa: ASYNC110 (readiness is a state it has no event for)
                await anyio.sleep(0.005)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            daemon.stop()
        return wall, cpu

    wall, cpu = anyio.run(main)
    return wall, cpu, _stats(url)["requests"] - before


def bench_cold_listing(small: bool) -> None:
    jobs = 1_000 if small else 10_000
    print(f"\nB. a cold start's first listing, {jobs:,} jobs, {LATENCY * 1e3:.0f} ms latency")
    spawn = multiprocessing.get_context("spawn")
    with simulator(jobs, 1, LATENCY) as url:
        with ProcessPoolExecutor(1, mp_context=spawn) as pool:
            wall, cpu, requests = pool.submit(_first_poll, url, "q0").result()
        start, cpu0 = time.perf_counter(), time.process_time()
        sdk_requests = sdk_listing(url, "q0")
        swall, scpu = time.perf_counter() - start, time.process_time() - cpu0
        start = time.perf_counter()
        anyio.run(bare_pages, url, "q0", -(-jobs // 100))
        floor = time.perf_counter() - start
    row(
        "Daemon.run to its first applied poll",
        f"{wall:.2f} s",
        "",
        f"CPU {cpu:.2f} s; {requests} requests, {LISTING_CONCURRENCY} in flight",
    )
    row(
        "huaweicloudsdkdli's paging loop",
        f"{swall:.2f} s",
        f"{swall / wall:.1f}x slower",
        f"CPU {scpu:.2f} s = {scpu / cpu:.1f}x ours; {sdk_requests} requests",
    )
    row(
        "floor: the same pages signed and read, no more",
        f"{floor:.2f} s",
        f"{wall / floor:.2f}x",
        f"so no client can be more than {swall / floor:.1f}x faster than the SDK here",
    )
    figures["as_run_cold_vs_floor"] = round(wall / floor, 2)
    figures["as_run_sdk_vs_floor"] = round(swall / floor, 2)
    figures["as_run_cold_listing_s"] = round(wall, 3)
    figures["as_run_cold_vs_sdk_wall"] = round(swall / wall, 2)
    figures["as_run_cold_vs_sdk_cpu"] = round(scpu / cpu, 2)


def _rss_after_first_poll(url: str, queues: int) -> int:
    names = ",".join(f"q{i}" for i in range(queues))
    with running(url, QUEUES=names, MAX_CONCURRENCY="8", MAX_RPS="1000") as d:
        d.until_ready()
        time.sleep(1)  # the first save, the first render
        return d.rss()


def bench_memory_as_run(small: bool) -> None:
    queues, per_queue = (2, 2_000) if small else (10, 10_000)
    jobs = queues * per_queue
    print(f"\nC. RSS per tracked job after the first poll, {jobs:,} jobs, 18% active")
    with simulator(jobs, queues, 0.0, active=jobs * 18 // 100) as url:
        full = _rss_after_first_poll(url, queues)
    with simulator(0, queues, 0.0, active=0) as url:
        empty = _rss_after_first_poll(url, queues)
    per_job = (full - empty) / jobs
    row(
        "process RSS minus an empty daemon's",
        f"{per_job:.0f} B/job",
        "",
        f"{full / 2**20:.1f} MiB against {empty / 2**20:.1f} MiB",
    )
    figures["as_run_rss_bytes_per_job"] = round(per_job)


def bench_settling(small: bool) -> None:
    print("\nD. polls until the API behaviour is settled, 1,500 finished jobs a queue")
    with (
        simulator(1_500, 3, 0.05) as url,
        running(url, QUEUES="q0,q1,q2", POLL_INTERVAL="0.5", PAGE_SIZE="25", MAX_RPS="1000") as d,
    ):
        seen: list[tuple[float, Any]] = []
        deadline = time.monotonic() + (6 if small else 12)
        while time.monotonic() < deadline:
            labels = sorted(d.samples("dli_monitor_api_behaviour_info"))
            seen.append((d.polls(), labels))
            time.sleep(0.05)
    last = seen[-1][1]
    # The poll count when the verdicts last changed (so a flip-flop counts until its end).
    changed = [i for i, (_, labels) in enumerate(seen) if labels != last]
    settled_at = seen[changed[-1] + 1][0] if changed else seen[0][0]
    row(
        "polls until the verdicts last changed",
        f"{settled_at:.0f}",
        "",
        f"{seen[-1][0]:.0f} polls watched",
    )
    figures["as_run_polls_to_settled_behaviour"] = settled_at


def bench_as_run(small: bool) -> None:
    bench_quiet_rounds(small)
    bench_cold_listing(small)
    bench_memory_as_run(small)
    bench_settling(small)
