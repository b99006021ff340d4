"""The daemon against the simulator over loopback: events match the ground truth exactly."""

from __future__ import annotations

import io
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import anyio
import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.app.config import Settings
from monitor.app.daemon import Daemon
from monitor.core.jobs import JobState
from monitor.output.events import configure_logging
from monitor.simulator import Simulator, World, running_simulator
from tests.harness import FAST, running
from tests.polltimes import timing_polls
from tests.truth import compare, parse_events

PROJECT = "e2eproject"
QUEUES = ("etl", "adhoc")
INTERVAL = 0.2
AK, SK = "E2EACCESSKEY", "e2e-S3CRET-key"  # every request is signed and verified


class Clock:
    """Wall time that a test can stop, so a world can be compared with a finished scrape."""

    def __init__(self) -> None:
        self.frozen: float | None = None

    def __call__(self) -> float:
        return self.frozen if self.frozen is not None else time.time()


@dataclass
class Run:
    world: World
    sim: Simulator
    clock: Clock
    url: str


@pytest.fixture
async def simulation() -> AsyncIterator[Run]:
    clock = Clock()
    world = World(
        PROJECT, QUEUES, seed=42, now_ms=int(clock() * 1000), lifecycle=FAST, initial_jobs=20
    )
    sim = Simulator(world, seed=42, clock=clock, credentials=(AK, SK))
    async with running_simulator(sim) as url:
        yield Run(world, sim, clock, url)


def settings(url: str, **kw: object) -> Settings:
    values: dict[str, object] = {
        "project_id": PROJECT,
        "endpoint": url,
        "queues": QUEUES,
        "poll_interval": INTERVAL,
        "auth": "aksk",
        "ak": AK,
        "sk": SK,
        "listen": "127.0.0.1:0",
        "max_rps": 1000,
    }
    return Settings(**{**values, **kw})  # type: ignore[arg-type]


async def scrape(address: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The samples of one scrape, keyed without the project labels (checked here: the
    simulator's project, and no region for a loopback endpoint)."""
    async with aiohttp.ClientSession() as session, session.get(f"http://{address}/metrics") as resp:
        text = await resp.text()
    samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
    assert {(s.labels.pop("project_id"), s.labels.pop("region")) for s in samples} == {
        (PROJECT, "")
    }
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in samples}


@pytest.mark.parametrize("strategy", ["full", "incremental"])
async def test_every_state_change_is_reported_once_in_order(
    simulation: Run, strategy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = io.StringIO()
    configure_logging("json", out)
    daemon = Daemon(settings(simulation.url, poll_strategy=strategy))
    with timing_polls(monkeypatch) as polls:
        async with running(daemon):
            baseline_ms = simulation.world.now_ms
            await anyio.sleep(6)
            # Freeze the world, let the daemon catch up, then compare levels as well as events.
            simulation.clock.frozen = time.time()
            end_ms = int(simulation.clock.frozen * 1000)
            await polls.settle(after=simulation.clock.frozen)
            metrics = await scrape(daemon.addresses[0])

    events = parse_events(out.getvalue())
    verdict = compare(
        events,
        simulation.world.history,
        baseline_ms=baseline_ms,
        end_ms=end_ms,
        # about one interval on an idle machine; measured, so a loaded one cannot fail it
        min_seen_ms=polls.min_seen_ms(PROJECT, after_ms=baseline_ms),
    )
    print(verdict)
    assert verdict.expected > 30, "the run must exercise many transitions"
    assert verdict.precision == 1.0 and verdict.recall == 1.0, str(verdict)

    ids = [e["event_id"] for e in events if e["event"].startswith("job.")]
    assert len(ids) == len(set(ids)), "event ids are unique per reported change"
    assert {e["event"] for e in events} >= {
        "monitor.started",
        "monitor.baseline",
        "job.transition",
        "job.discovered",
        "monitor.stopping",
    }
    for event in events:
        assert {"event", "timestamp", "level"} <= event.keys()
        assert event["timestamp"].endswith("Z")

    for queue in QUEUES:
        truth = simulation.world.counts(queue)
        for state in JobState:
            key = ("dli_batch_jobs", (("queue", queue), ("state", state.value)))
            assert metrics[key] == truth[state], (queue, state)
        assert metrics[("dli_monitor_up", (("queue", queue),))] == 1.0
    transitions = sum(
        v
        for (name, labels), v in metrics.items()
        if name == "dli_batch_job_transitions_total" and ("from_state", "new") not in labels
    )
    assert transitions == sum(1 for e in events if e["event"] == "job.transition")


async def test_one_failing_queue_does_not_stop_the_others(simulation: Run) -> None:
    out = io.StringIO()
    configure_logging("json", out)
    daemon = Daemon(settings(simulation.url, queues=("etl", "missing")))
    simulation.sim.faults.failing_queues = frozenset({"missing"})
    async with running(daemon, ready=False):
        await anyio.sleep(3)
        metrics = await scrape(daemon.addresses[0])
        ready = daemon.ready()
    assert metrics[("dli_monitor_up", (("queue", "etl"),))] == 1.0
    assert metrics[("dli_monitor_up", (("queue", "missing"),))] == 0.0
    assert not ready[0] and "missing" in ready[1]
    events = parse_events(out.getvalue())
    assert any(e["event"] == "job.transition" and e["queue"] == "etl" for e in events)
    failed = [e for e in events if e["event"] == "poll.failed"]
    assert failed and all(e["queue"] == "missing" for e in failed)
    assert {"error", "error_code", "attempt", "retry_in"} <= failed[-1].keys()
