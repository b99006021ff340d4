"""What the benchmarks share: the signed simulator in a subprocess, our client as they use it,
and how figures are printed and collected."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import anyio
from pydantic import SecretStr

from monitor.dli.auth import AkSkSigner, OutgoingRequest, canonical_query
from monitor.dli.client import ClientHooks, DLIClient
from monitor.dli.ratelimit import Ceiling
from monitor.dli.transport import AiohttpTransport

__all__ = [
    "AK",
    "CONCURRENCY",
    "LATENCY",
    "LISTING_CONCURRENCY",
    "PROJECT",
    "SK",
    "BareClient",
    "best",
    "figures",
    "make_client",
    "measure",
    "row",
    "rss",
    "simulator",
]

AK, SK, PROJECT = "BENCHACCESSKEY", "bench-secret-key", "benchproject"
#: the simulated network latency of the listing figures (2, 3), per request
LATENCY = 0.02
#: requests in flight per client: the daemon's default (DLI_MONITOR_MAX_CONCURRENCY)
CONCURRENCY = 4
#: requests in flight in the listing figures (2, 3), as the issue that set their targets measured
LISTING_CONCURRENCY = 8
#: every figure of the run, printed as one JSON object at the end
figures: dict[str, Any] = {}


def row(name: str, value: str, ratio: str = "", note: str = "") -> None:
    print(f"  {name:<46} {value:>16} {ratio:>12}  {note}")


def rss() -> int:
    """This process's resident memory, in bytes."""
    statm = Path("/proc/self/statm").read_text()
    return int(statm.split()[1]) * os.sysconf("SC_PAGE_SIZE")


@contextmanager
def simulator(
    jobs: int,
    queues: int,
    latency: float,
    active: int | None = None,
    project: str = PROJECT,
    extra: tuple[str, ...] = (),
) -> Iterator[str]:
    """``dli-monitor simulate`` in a subprocess (its CPU is not ours), verifying signatures;
    yields its URL. Queues are named q0, q1, …; nothing moves unless polled."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    names = ",".join(f"q{i}" for i in range(queues))
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor", "simulate", "--port", str(port),
         "--project-id", project, "--queues", names, "--jobs", str(jobs),
         "--history", str(jobs), "--speed", "100000", "--arrival", "0",
         "--latency", str(latency),
         *(["--active", str(active)] if active is not None else []),
         "--ak", AK, "--sk", SK, *extra],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        proc.stdout.readline()  # "simulating …": ready
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def make_client(
    session: aiohttp.ClientSession,
    url: str,
    hooks: ClientHooks | None = None,
    project: str = PROJECT,
    concurrency: int = CONCURRENCY,
) -> DLIClient:
    """Our client as the benchmarks use it: signed, concurrency 4, no rate limit in the way."""
    signer = AkSkSigner.from_keys(AK, SecretStr(SK), project_id=project)
    transport = AiohttpTransport(
        session,
        url,
        signer=signer,
        max_concurrency=concurrency,
        ceiling=Ceiling(10_000),
        timeout=30,
    )
    return DLIClient(transport, project, hooks=hooks)


def best(fn: Callable[[], object], repeat: int = 5) -> float:
    """Best wall time of ``repeat`` runs (the least disturbed by the rest of the machine)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(fn: Callable[[], object]) -> tuple[float, float, object]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, result


class BareClient:
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
