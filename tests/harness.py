"""Running the product inside a test, in one place: the worlds tests simulate, settings for a
daemon on loopback, a daemon in this process (started, optionally awaited until ready, always
stopped), a daemon polling a fast simulator, the installed command in a subprocess stopped as
Kubernetes stops it, and a real Prometheus scraping daemons with the shipped rules."""

from __future__ import annotations

import io
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import anyio
import orjson

from monitor.app.config import Settings
from monitor.app.daemon import Daemon
from monitor.output.events import configure_logging
from monitor.simulator import Lifecycle, Simulator, World, running_simulator
from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parent.parent

#: states last ten minutes or more and no job arrives: counts hold still while a test compares
STILL = Lifecycle(
    starting=(600, 900), running=(600, 900), recovering=(600, 900), arrival_interval=0
)
#: every state lasts a second or two and jobs keep arriving: many changes in a few seconds
FAST = Lifecycle(
    starting=(0.5, 1.5),
    running=(0.6, 2.0),
    recovering=(0.5, 1.0),
    arrival_interval=0.5,
    p_recovery=0.3,
)
SERVER_PROJECT = "srvproject"
SERVER_QUEUES = ("etl", "adhoc")


def loopback_settings(url: str, project_id: str, queues: tuple[str, ...], **kw: object) -> Settings:
    """A daemon's settings against a simulator at ``url``: no auth, any free port, no rate
    ceiling in the way; ``kw`` overrides any of them."""
    values: dict[str, object] = {
        "project_id": project_id,
        "endpoint": url,
        "queues": queues,
        "auth": "none",
        "listen": "127.0.0.1:0",
        "max_rps": 1000,
    }
    return Settings(**{**values, **kw})  # type: ignore[arg-type]


def polls_made(daemon: Daemon, project_id: str, queues: tuple[str, ...]) -> float:
    """Polls the daemon has made of ``queues`` (failed ones too), from its own histogram."""
    return sum(
        daemon.metrics.registry.get_sample_value(
            "dli_monitor_poll_duration_seconds_count",
            {"project_id": project_id, "region": "", "queue": queue},
        )
        or 0
        for queue in queues
    )


def free_port() -> int:
    """A loopback port nothing listens on (now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def running(
    daemon: Daemon, *, ready: bool = True, within: float = 10
) -> AsyncIterator[Daemon]:
    """Run ``daemon`` for the block (in this task's task group, so use it inside the test, not
    in a fixture). With ``ready``, wait first until every queue has been polled once."""
    async with anyio.create_task_group() as tg:
        await tg.start(partial(daemon.run, handle_signals=False))
        try:
            if ready:
                with anyio.fail_after(within):
                    while not daemon.ready()[0]:
                        await anyio.sleep(0.02)
            yield daemon
        finally:
            daemon.stop()


@dataclass(frozen=True)
class Stopped:
    """What a command printed and how it ended."""

    first_line: str
    returncode: int
    #: stdout after the first line
    out: str
    err: str
    #: from SIGTERM to exit (0 when it ended by itself)
    stop_seconds: float


def stop_after_first_line(
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    stop_if: Callable[[str], bool] = lambda line: True,
) -> Stopped:
    """``python -m monitor *args``: read its first stdout line, then send SIGTERM (if
    ``stop_if`` says so of that line) and collect the rest."""
    with subprocess.Popen(
        [sys.executable, "-m", "monitor", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        stop = stop_if(first)
        started = time.monotonic()
        if stop:
            proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
        seconds = time.monotonic() - started if stop else 0.0
    return Stopped(first, proc.returncode, out, err, seconds)


@asynccontextmanager
async def running_daemon() -> AsyncIterator[Daemon]:
    """A daemon polling a fast simulator. (A context manager, not a fixture: its task group must
    be entered and left in the same task.)"""
    configure_logging("json", io.StringIO())
    lifecycle = Lifecycle(
        starting=(0.3, 0.8), running=(0.3, 1.0), recovering=(0.3, 0.5), arrival_interval=0.3
    )
    world = World(
        SERVER_PROJECT, SERVER_QUEUES, seed=3, now_ms=int(time.time() * 1000), lifecycle=lifecycle
    )
    async with running_simulator(Simulator(world)) as url:
        d = Daemon(
            Settings(
                project_id=SERVER_PROJECT,
                endpoint=url,
                queues=SERVER_QUEUES,
                poll_interval=0.2,
                auth="none",
                listen="127.0.0.1:0",
            )
        )
        async with running(d):
            # until transitions (and so their exemplars) exist: a job starts in 0.3-0.8 s
            with anyio.fail_after(10):
                while written(d, "job.transition") < 3:
                    await anyio.sleep(0.02)
            yield d


def written(daemon: Daemon, event: str) -> float:
    """How many ``event`` events the daemon has written (dli_monitor_events_total)."""
    labels = {"project_id": SERVER_PROJECT, "region": "", "event": event}
    return daemon.metrics.registry.get_sample_value("dli_monitor_events_total", labels) or 0


async def get(address: str, path: str, accept: str = "") -> tuple[int, str, str]:
    headers = {"Accept": accept} if accept else {}
    async with aiohttp.ClientSession() as s, s.get(f"http://{address}{path}", headers=headers) as r:
        return r.status, r.headers["Content-Type"], await r.text()


RULES = ROOT / "deploy" / "prometheus" / "dli-monitor.rules.yml"


Query = Callable[[str], Awaitable[list[dict[str, Any]]]]


@asynccontextmanager
async def running_prometheus(targets: Sequence[str]) -> AsyncIterator[Query]:
    """Prometheus scraping ``targets`` every second with the shipped rules; yields a function
    that runs an instant query and returns its result vector."""
    binary = require_tool("prometheus")
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            f"rule_files: ['{RULES}']\n"
            "scrape_configs:\n"
            "  - job_name: dli-monitor\n"
            f"    static_configs: [{{targets: {list(targets)}}}]\n"
        )
        proc = await anyio.open_process(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp}/data",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip

        async def query(expr: str) -> list[dict[str, Any]]:
            try:
                _, _, body = await get(f"127.0.0.1:{port}", f"/api/v1/query?query={quote(expr)}")
            except aiohttp.ClientError:
                return []  # not up yet
            result: list[dict[str, Any]] = orjson.loads(body).get("data", {}).get("result", [])
            return result

        try:
            yield query
        finally:
            proc.terminate()
            with anyio.fail_after(10):
                await proc.wait()


async def until(query: Query, expr: str, rows: int) -> list[dict[str, Any]]:
    """Query ``expr`` until it has at least ``rows`` rows (scrapes and rules run every second)."""
    result: list[dict[str, Any]] = []
    with anyio.fail_after(30):
        while len(result) < rows:
            await anyio.sleep(0.5)
            result = await query(expr)
    return result
