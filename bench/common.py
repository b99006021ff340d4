"""What the benchmarks share: the signed simulator in a subprocess, our client as they use it,
and how figures are printed and collected."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
from pydantic import SecretStr

from monitor.dli.auth import AkSkSigner
from monitor.dli.client import ClientHooks, DLIClient

__all__ = [
    "AK",
    "CONCURRENCY",
    "LISTING_CONCURRENCY",
    "PROJECT",
    "SK",
    "figures",
    "make_client",
    "row",
    "rss",
    "simulator",
]

AK, SK, PROJECT = "BENCHACCESSKEY", "bench-secret-key", "benchproject"
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
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@contextmanager
def simulator(
    jobs: int, queues: int, latency: float, active: int | None = None, project: str = PROJECT
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
         "--ak", AK, "--sk", SK],
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
    return DLIClient(
        session,
        url,
        project,
        signer=signer,
        max_concurrency=concurrency,
        max_rps=10_000,
        timeout=30,
        hooks=hooks,
    )
