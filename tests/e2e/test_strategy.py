"""Choosing between full and incremental polls, and never inventing a discovery when moving
between them."""

from __future__ import annotations

import io
import time
from pathlib import Path

import anyio

from monitor.app.config import Settings
from monitor.app.daemon import Daemon
from monitor.core.jobs import JobState
from monitor.output.events import configure_logging
from monitor.simulator import ApiVariant, Simulator, World, running_simulator
from tests.harness import STILL, polls_made, running
from tests.truth import parse_events

INTERVAL = 0.2


def settings(url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "project_id": "strategy",
        "endpoint": url,
        "queues": ("etl",),
        "auth": "none",
        "listen": "127.0.0.1:0",
        "max_rps": 1000,
        "poll_interval": INTERVAL,
    }
    return Settings(**{**values, **overrides})  # type: ignore[arg-type]


def history_world(jobs: int = 3000, active: int = 30) -> World:
    return World(
        "strategy",
        ("etl",),
        seed=4,
        now_ms=int(time.time() * 1000),
        lifecycle=STILL,
        initial_jobs=jobs,
        initial_active=active,
        history_limit=jobs,
    )


async def test_auto_switches_to_incremental_on_a_long_history() -> None:
    out = io.StringIO()
    configure_logging("json", out)
    world = history_world()
    sim = Simulator(world)
    async with running_simulator(sim) as url:
        daemon = Daemon(settings(url))
        async with running(daemon):
            first = sim.requests
            with anyio.fail_after(30):  # the switch comes with the second poll
                while '"strategy":"incremental"' not in out.getvalue():
                    await anyio.sleep(0.02)
                before, polls_before = sim.requests, polls_made(daemon, "strategy", ("etl",))
                await anyio.sleep(INTERVAL * 10)  # about ten polls, however many were made
                per_poll = (sim.requests - before) / (
                    polls_made(daemon, "strategy", ("etl",)) - polls_before
                )
        exported = daemon.pollers[0].summary
    events = parse_events(out.getvalue())
    switches = [e for e in events if e["event"] == "poll.strategy"]
    assert [(e["queue"], e["strategy"]) for e in switches] == [("etl", "incremental")]
    # total is not trusted before a pass showed it matches the rows, but it bounds the pages
    # asked for: 3,000 jobs take 30 pages and the empty one at 3,000 (the only request past
    # the end of the data), and the probe of total two one-row requests.
    assert first == 33, "the first poll lists all 3,000 jobs, 100 a page"
    print(f"requests per poll: full {first}, incremental {per_poll:.1f}")
    assert per_poll <= 4, "3 active states, 1 page of new jobs; the terminal counts are kept"
    assert not [e for e in events if e["event"].startswith("job.")], "nothing changed"
    assert exported is not None
    assert {s: exported.counts.get(("etl", s), 0) for s in JobState} == world.counts("etl")


async def test_an_api_ignoring_the_state_filter_gets_full_listings() -> None:
    out = io.StringIO()
    configure_logging("json", out)
    world = history_world(jobs=200, active=20)
    sim = Simulator(world, variant=ApiVariant(ignore_state_filter=True))
    async with running_simulator(sim) as url:
        daemon = Daemon(settings(url, poll_strategy="incremental"))
        async with running(daemon):  # ready: its first (incremental) poll was applied
            await anyio.sleep(INTERVAL * 4)  # and a few full listings since
        exported = daemon.pollers[0].summary
    events = parse_events(out.getvalue())
    switches = [e for e in events if e["event"] == "poll.strategy"]
    assert [e["strategy"] for e in switches] == ["full"]
    assert "state filter" in switches[0]["reason"]
    behaviour = [e for e in events if e["event"] == "api.behaviour"]
    assert behaviour and behaviour[-1]["state_filter"] == "ignored"
    assert not [e for e in events if e["event"].startswith("job.")]
    assert exported is not None
    assert {s: exported.counts.get(("etl", s), 0) for s in JobState} == world.counts("etl")


async def test_restart_from_incremental_state_never_rediscovers_history(tmp_path: Path) -> None:
    """Incremental polls forget old finished jobs; a later full listing (another strategy after
    a restart) sees them again: they are history, not discoveries."""
    out = io.StringIO()
    configure_logging("json", out)
    world = history_world(jobs=500, active=10)
    state = tmp_path / "state.json"
    async with running_simulator(Simulator(world)) as url:
        for strategy in ("incremental", "full", "auto", "incremental"):
            daemon = Daemon(settings(url, poll_strategy=strategy, state_file=state))
            async with running(daemon):  # ready: its first poll was applied
                await anyio.sleep(INTERVAL * 3)  # and a few more, whatever their strategy
            exported = daemon.pollers[0].summary
            assert exported is not None
            assert {s: exported.counts.get(("etl", s), 0) for s in JobState} == world.counts("etl")
    events = parse_events(out.getvalue())
    assert sum(e["event"] == "monitor.baseline" for e in events) == 1
    assert not [e for e in events if e["event"].startswith("job.")], "nothing happened"
