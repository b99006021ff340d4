"""Restarts that neither repeat nor lose an event: a graceful stop, and SIGKILL at an arbitrary
moment, with the state file in between."""

from __future__ import annotations

import io
import os
import signal
import sys
import time
from pathlib import Path

import anyio
import orjson
from anyio.abc import Process

from monitor.app.config import Settings
from monitor.app.daemon import Daemon
from monitor.output.events import configure_logging
from monitor.simulator import Simulator, World, running_simulator
from tests.harness import FAST, running
from tests.truth import compare, parse_events

PROJECT = "e2eproject"
QUEUES = ("etl", "adhoc")
INTERVAL = 0.2


async def test_graceful_restart_neither_repeats_nor_loses_events(tmp_path: Path) -> None:
    out = io.StringIO()
    configure_logging("json", out)
    state = tmp_path / "state.json"
    world = World(PROJECT, QUEUES, seed=11, now_ms=int(time.time() * 1000), lifecycle=FAST)
    blind: list[tuple[int, int]] = []
    async with running_simulator(Simulator(world, seed=11)) as url:
        settings = Settings(
            project_id=PROJECT,
            endpoint=url,
            queues=QUEUES,
            auth="none",
            poll_interval=INTERVAL,
            listen="127.0.0.1:0",
            max_rps=1000,
            state_file=state,
        )
        baseline_ms = 0
        for run in range(3):
            daemon = Daemon(settings)
            async with running(daemon):
                if run == 0:
                    baseline_ms = world.now_ms
                else:
                    blind[-1] = (blind[-1][0], world.now_ms)
                await anyio.sleep(2)
            stopped = int(time.time() * 1000)
            blind.append((stopped, stopped))
            await anyio.sleep(0.7)  # the world moves on while no daemon watches
        end_ms = blind.pop()[0]
    events = parse_events(out.getvalue())
    assert sum(e["event"] == "monitor.baseline" for e in events) == len(QUEUES), "only once"
    assert sum(e["event"] == "monitor.started" for e in events) == 3
    verdict = compare(
        events,
        world.history,
        baseline_ms=baseline_ms,
        end_ms=end_ms,
        min_seen_ms=int(INTERVAL * 1000) + 150,
        blind=blind,
    )
    print(verdict)
    assert verdict.expected > 20
    assert verdict.precision == 1.0 and verdict.recall == 1.0, str(verdict)


async def _lines_until(proc: Process, needle: bytes, sink: list[bytes], limit: float) -> None:
    assert proc.stdout is not None
    buffer = b""
    with anyio.fail_after(limit):
        async for chunk in proc.stdout:
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            sink.extend(lines)
            if any(needle in line for line in lines):
                return


async def test_sigkill_at_any_moment_then_restart_is_exactly_once_after_dedup(
    tmp_path: Path,
) -> None:
    """SIGKILL can land between emitting events and saving them: the restart then repeats them
    with the same event_id, and deduplicating on it gives exactly the true changes."""
    state = tmp_path / "state.json"
    world = World(PROJECT, QUEUES, seed=5, now_ms=int(time.time() * 1000), lifecycle=FAST)
    lines: list[bytes] = []
    blind: list[tuple[int, int]] = []
    baseline_ms = 0
    async with running_simulator(Simulator(world, seed=5)) as url:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("DLI_MONITOR_")},
            "DLI_MONITOR_PROJECT_ID": PROJECT,
            "DLI_MONITOR_ENDPOINT": url,
            "DLI_MONITOR_QUEUES": ",".join(QUEUES),
            "DLI_MONITOR_AUTH": "none",
            "DLI_MONITOR_POLL_INTERVAL": str(INTERVAL),
            "DLI_MONITOR_LISTEN": "127.0.0.1:0",
            "DLI_MONITOR_MAX_RPS": "1000",
            "DLI_MONITOR_STATE_FILE": str(state),
            "DLI_MONITOR_LOG_FORMAT": "json",
        }
        for run, lifetime in enumerate((2.0, 1.37, 1.81, 2.0)):
            async with await anyio.open_process(
                [sys.executable, "-m", "monitor", "run"], env=env
            ) as proc:
                await _lines_until(
                    proc, b"monitor.baseline" if run == 0 else b"monitor.started", lines, 20
                )
                if run == 0:
                    baseline_ms = world.now_ms
                else:
                    await anyio.sleep(INTERVAL * 2)  # its first poll has certainly happened
                    blind[-1] = (blind[-1][0], world.now_ms - int(INTERVAL * 2000))
                with anyio.move_on_after(lifetime):
                    await _lines_until(proc, b"\x00never", lines, lifetime + 1)
                last = run == 3
                proc.send_signal(signal.SIGTERM if last else signal.SIGKILL)
                killed = int(time.time() * 1000)
                await _lines_until(proc, b"\x00never", lines, 5)  # drain to EOF
                with anyio.fail_after(5):
                    assert await proc.wait() == (0 if last else -signal.SIGKILL)
                blind.append((killed, killed))
        end_ms = blind.pop()[0]
    events = [orjson.loads(line) for line in lines if line.startswith(b"{")]
    unique: dict[str, dict[str, object]] = {}
    for event in events:
        if str(event["event"]).startswith("job."):
            unique.setdefault(str(event["event_id"]), event)
    verdict = compare(
        list(unique.values()),
        world.history,
        baseline_ms=baseline_ms,
        end_ms=end_ms,
        min_seen_ms=int(INTERVAL * 1000) + 150,
        blind=blind,
    )
    print(verdict, f"({len(events)} lines, {len(unique)} unique job events)")
    assert verdict.expected > 20
    assert verdict.precision == 1.0 and verdict.recall == 1.0, str(verdict)
