"""Several projects in one deployment, spread over shards: the installed command, run as M
replicas (M = 1, 2, 3) against the simulators of three projects whose queues share names.

The union of one M's replicas reports exactly the true changes of every project (100% precision
and recall against the simulators' ground truth), no (project, queue) is polled by two replicas
and none by zero; a target with rejected keys and a throttled one never slow the third; and a
real Prometheus gives the same recorded totals from two shards as from one unsharded daemon.
"""

from __future__ import annotations

import io
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import Process

from monitor.app.config import Settings
from monitor.app.daemon import Daemon
from monitor.output.events import configure_logging
from monitor.simulator import Faults, Lifecycle, Simulator, World, running_simulator
from tests.harness import FAST, STILL, free_port, polls_made, running, running_prometheus, until
from tests.polltimes import timing_polls
from tests.truth import compare, parse_events

PROJECTS = ("projecta", "projectb", "projectc")
QUEUES = ("etl", "adhoc", "ml")
INTERVAL = 0.3


@dataclass
class Project:
    sim: Simulator
    url: str

    def freeze(self) -> int:
        """No new jobs, and the simulator's clock stopped: the world stays as it is now."""
        self.sim.world.lifecycle = replace(self.sim.world.lifecycle, arrival_interval=0)
        frozen = time.time()
        self.sim._clock = lambda: frozen
        return self.sim.world.now_ms


@asynccontextmanager
async def simulators(lifecycle: Lifecycle, jobs: int = 15) -> AsyncIterator[dict[str, Project]]:
    """One simulator per project, each with the same queue names."""
    async with AsyncExitStack() as stack:
        projects: dict[str, Project] = {}
        for seed, project in enumerate(PROJECTS):
            world = World(project, QUEUES, seed=seed, now_ms=int(time.time() * 1000),
                          lifecycle=lifecycle, initial_jobs=jobs)  # fmt: skip
            sim = Simulator(world, seed=seed)
            projects[project] = Project(
                sim, await stack.enter_async_context(running_simulator(sim))
            )
        yield projects


def config_file(tmp_path: Path, sims: dict[str, Project]) -> Path:
    tables = "".join(
        f'[[targets]]\nproject_id = "{p}"\nendpoint = "{s.url}"\n' for p, s in sims.items()
    )
    path = tmp_path / "targets.toml"
    path.write_text(f'auth = "none"\nqueues = {list(QUEUES)}\nmax_rps = 1000\n{tables}')
    return path


class Replica:
    """``dli-monitor run --config`` as shard ``index`` of ``total``; its stdout collected."""

    def __init__(self, process: Process, port: int) -> None:
        self.process = process
        self.port = port
        self.lines: list[str] = []

    async def read(self) -> None:
        assert self.process.stdout is not None
        buffer = b""
        async for chunk in self.process.stdout:
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            self.lines += [line.decode() for line in lines]

    def events(self) -> list[dict[str, Any]]:
        return parse_events("\n".join(self.lines))


@asynccontextmanager
async def replicas(config: Path, total: int) -> AsyncIterator[list[Replica]]:
    async with anyio.create_task_group() as tg:
        started = []
        for index in range(total):
            port = free_port()
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("DLI_MONITOR_")},
                "DLI_MONITOR_SHARD": str(index),
                "DLI_MONITOR_TOTAL_SHARDS": str(total),
                "DLI_MONITOR_POLL_INTERVAL": str(INTERVAL),
                "DLI_MONITOR_LISTEN": f"127.0.0.1:{port}",
                "DLI_MONITOR_LOG_FORMAT": "json",
            }
            process = await anyio.open_process(
                [sys.executable, "-m", "monitor", "run", "--config", str(config)], env=env
            )
            replica = Replica(process, port)
            tg.start_soon(replica.read)
            started.append(replica)
        try:
            yield started
        finally:
            for replica in started:
                replica.process.send_signal(signal.SIGTERM)
            with anyio.fail_after(10):
                for replica in started:
                    assert await replica.process.wait() == 0


def baselines(group: list[Replica]) -> int:
    return sum(e["event"] == "monitor.baseline" for r in group for e in r.events())


async def test_shards_report_exactly_the_true_changes_each_pair_polled_once(
    tmp_path: Path,
) -> None:
    configure_logging("json", io.StringIO())
    pairs = len(PROJECTS) * len(QUEUES)
    async with simulators(FAST) as sims, AsyncExitStack() as stack:
        config = config_file(tmp_path, sims)
        groups = {m: await stack.enter_async_context(replicas(config, m)) for m in (1, 2, 3)}
        with anyio.fail_after(30):
            while any(baselines(g) < pairs for g in groups.values()):
                await anyio.sleep(0.1)
        baseline_ms = {p: s.sim.world.now_ms for p, s in sims.items()}
        await anyio.sleep(6)
        end_ms = {p: s.freeze() for p, s in sims.items()}  # then every replica catches up
        await anyio.sleep(6 * INTERVAL + 1)
    for m, group in groups.items():
        owned = [
            (e["project_id"], q)
            for r in group
            for e in r.events()
            if e["event"] == "monitor.started"
            for q in e["queues"]
        ]
        assert sorted(owned) == sorted((p, q) for p in PROJECTS for q in QUEUES), m
        if m > 1:
            assert all(r.events()[0]["queues"] for r in group) or pairs < m, "work for each"
        events = [e for r in group for e in r.events()]
        for project, p in sims.items():
            mine = [e for e in events if e.get("project_id") == project]
            verdict = compare(
                mine,
                p.sim.world.history,
                baseline_ms=baseline_ms[project],
                end_ms=end_ms[project],
                # Six replica processes share the machine, out of reach of tests/polltimes.py:
                # a state is certainly seen when it outlasts two intervals (one poll lost to a
                # slow start is made good by the next) plus 0.5 s, the longest a poll of these
                # small worlds (15 jobs a queue, one page) was measured to take with all six
                # running on 2 cores under the suite's other workers.
                min_seen_ms=int((2 * INTERVAL + 0.5) * 1000),
            )
            print(f"M={m} {project}: {verdict}")
            assert verdict.expected > 10, verdict
            assert verdict.precision == 1.0 and verdict.recall == 1.0, (m, project, str(verdict))


@contextmanager
def counting_polls(daemon: Daemon, project: str) -> Iterator[list[float]]:
    """Polls of ``project``'s queues, counted from the daemon's own histogram."""

    def polls() -> float:
        return polls_made(daemon, project, QUEUES)

    counts = [polls()]
    yield counts
    counts.append(polls())


async def test_rejected_keys_and_throttling_of_two_targets_never_slow_the_third(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = io.StringIO()
    configure_logging("json", out)
    async with simulators(FAST) as sims:
        rejected, throttled, healthy = PROJECTS
        sims[rejected].sim.credentials = ("REALKEY", "real-key")
        sims[throttled].sim.faults = Faults(throttle=1.0, retry_after=1.0)
        tables = [{"project_id": p, "endpoint": s.url, "auth": "none"} for p, s in sims.items()]
        # The rejected target signs with keys the simulator does not know.
        tables[0] |= {"auth": "aksk", "ak": "WRONGKEY", "sk": "wrong-S3CRET"}
        settings = Settings(
            queues=QUEUES,
            poll_interval=INTERVAL,
            listen="127.0.0.1:0",
            max_rps=1000,
            targets=tuple(tables),
        )
        daemon = Daemon(settings)
        with timing_polls(monkeypatch) as timing:
            async with running(daemon, ready=False):
                await anyio.sleep(1)  # every target has started
                baseline_ms = sims[healthy].sim.world.now_ms
                with counting_polls(daemon, healthy) as counts:
                    await anyio.sleep(4)
                end_ms = sims[healthy].freeze()
                await timing.settle(after=end_ms / 1000, project_id=healthy)
    polls = counts[1] - counts[0]
    expected = len(QUEUES) * 4 / INTERVAL
    assert polls >= 0.85 * expected, f"{polls} polls of the healthy target, {expected} due"
    events = parse_events(out.getvalue())
    failed = {e["project_id"] for e in events if e["event"] == "poll.failed"}
    assert failed == {rejected, throttled}
    verdict = compare(
        [e for e in events if e.get("project_id") == healthy],
        sims[healthy].sim.world.history,
        baseline_ms=baseline_ms,
        end_ms=end_ms,
        min_seen_ms=timing.min_seen_ms(healthy, after_ms=baseline_ms),
    )
    assert verdict.expected > 10 and verdict.precision == verdict.recall == 1.0, str(verdict)


@pytest.mark.needs("prometheus")
async def test_prometheus_totals_from_two_shards_equal_one_unsharded_daemon(
    tmp_path: Path,
) -> None:
    configure_logging("json", io.StringIO())
    async with simulators(STILL, jobs=40) as sims, AsyncExitStack() as stack:
        config = config_file(tmp_path, sims)
        sharded = await stack.enter_async_context(replicas(config, 2))
        whole = await stack.enter_async_context(replicas(config, 1))
        pairs = len(PROJECTS) * len(QUEUES)
        query_sharded = await stack.enter_async_context(
            running_prometheus([f"127.0.0.1:{r.port}" for r in sharded])
        )
        query_whole = await stack.enter_async_context(
            running_prometheus([f"127.0.0.1:{r.port}" for r in whole])
        )
        rule = "queue:dli_batch_jobs_active:sum"
        results = [await until(q, rule, pairs) for q in (query_sharded, query_whole)]
        ups = await until(query_sharded, "up", 2)

    def totals(rows: list[dict[str, Any]]) -> dict[tuple[str, str], float]:
        return {
            (r["metric"]["project_id"], r["metric"]["queue"]): float(r["value"][1]) for r in rows
        }

    sharded_totals, whole_totals = (totals(r) for r in results)
    assert sorted(whole_totals) == sorted((p, q) for p in PROJECTS for q in QUEUES)
    assert sum(whole_totals.values()) > 0
    assert sharded_totals == whole_totals, "two shards add up to one unsharded daemon"
    assert [u["value"][1] for u in ups] == ["1", "1"]
