"""One project-wide pass per round, split by queue: its request sequence, its choice against
per-queue passes, and exact events, on an in-memory API and a fake clock."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import anyio
from structlog.testing import capture_logs

from monitor.core.behaviour import BehaviourBook
from monitor.core.jobs import JobState
from monitor.output.events import EventLog
from monitor.output.metrics import Metrics
from monitor.output.scope import Scope
from monitor.poll.poller import PolledQueue, PollOutput, PollSettings, QueuePoller
from monitor.poll.shared import ProjectPass
from monitor.poll.strategy import IncrementalStrategy
from monitor.simulator import World
from tests.fakes import FakeApi, FakeClock
from tests.rig import QUIET, T0, job_events

S = JobState
PAGE = 10


class Rounds:
    """``queues`` polled incrementally by pollers sharing one :class:`ProjectPass`; the world
    also holds the jobs of ``others``, queues this replica does not watch."""

    def __init__(self, queues: tuple[str, ...], *, others: tuple[str, ...] = ()) -> None:
        self.world = World("p1", queues + others, seed=11, now_ms=int(T0 * 1000),
                           lifecycle=QUIET, initial_jobs=0)  # fmt: skip
        self.clock = FakeClock(T0, self.world)
        self.source = FakeApi(self.world)
        self.book = BehaviourBook()
        self.scopes: list[tuple[str, str]] = []
        self.shared = ProjectPass(
            self.book,
            page_size=PAGE,
            interval=30,
            on_scope=lambda scope, why: self.scopes.append((scope, why)),
            clock=self.clock,
        )
        metrics = Metrics("t").for_scope(Scope("p1"))
        settings = PollSettings(30, page_size=PAGE, strategy="incremental", clock=self.clock)
        self.pollers = [
            QueuePoller(
                PolledQueue(q),
                self.source.client,
                PollOutput(EventLog("p1"), metrics),
                settings,
                behaviour=self.book,
                shared=self.shared,
            )
            for q in queues
        ]
        self.shared.serve(self.pollers)

    def seed(self, queue: str, *, finished: int, running: int) -> None:
        for n in range(finished + running):
            job = self.world.submit(queue, at_ms=self.world.now_ms - 3_600_000 - n * 600_000)
            self.world.set_state(job.id, S.RUNNING)
            if n < finished:
                self.world.set_state(job.id, S.SUCCESS)
        for job in self.world.jobs.values():
            job.plan = []  # the tests move jobs explicitly

    async def round(self) -> list[MutableMapping[str, Any]]:
        """Every poller polls once (together, as their loops do), then 30 s pass."""
        with capture_logs() as logs:
            async with anyio.create_task_group() as tg:
                for poller in self.pollers:
                    tg.start_soon(poller.poll)
        self.clock.advance(30)
        return logs

    def counts(self, queue: str) -> dict[JobState, int]:
        poller = next(p for p in self.pollers if p.polled.queue == queue)
        assert poller.summary is not None
        return {s: poller.summary.counts.get((queue, s), 0) for s in S}


async def warmed(rounds: Rounds, n: int = 3) -> None:
    for _ in range(n):
        await rounds.round()
    assert all(isinstance(p.strategy, IncrementalStrategy) for p in rounds.pollers)


async def test_a_quiet_round_of_many_queues_is_one_pass_of_a_few_requests() -> None:
    queues = tuple(f"q{i}" for i in range(10))
    rounds = Rounds(queues)
    for q in queues:
        rounds.seed(q, finished=30, running=2)
    await warmed(rounds)
    rounds.source.requests.clear()
    logs = await rounds.round()
    assert logs == [], "nothing changed, nothing said"
    lists = rounds.source.lists()
    # 20 running jobs (two pages of 10), no starting or recovering one, no new job: one request
    # per listing and the second page of running; no queue_name, no recount.
    assert sorted((q.get("state", "new"), q["from"]) for q in lists) == [
        ("new", "0"), ("recovering", "0"), ("running", "0"), ("running", "10"), ("starting", "0"),
    ]  # fmt: skip
    assert not any("queue_name" in q for q in lists)
    assert rounds.scopes[-1][0] == "project-wide"
    assert "10 queues" in rounds.scopes[-1][1]
    for q in queues:
        assert rounds.counts(q) == rounds.world.counts(q)


async def test_each_queue_gets_its_own_changes_once() -> None:
    rounds = Rounds(("etl", "ml"), others=("adhoc",))
    for q in ("etl", "ml", "adhoc"):
        rounds.seed(q, finished=5, running=3)
    await warmed(rounds)
    running = {
        q: next(j.id for j in rounds.world.jobs.values() if j.queue == q and j.state is S.RUNNING)
        for q in ("etl", "ml", "adhoc")
    }
    for job_id in running.values():
        rounds.world.set_state(job_id, S.DEAD)
    new = rounds.world.submit("ml").id
    rounds.world.jobs[new].plan = []
    logs = await rounds.round()
    reported = sorted((e["queue"], *event) for e, event in zip(
        [e for e in logs if e["event"].startswith("job.")], job_events(logs), strict=True
    ))  # fmt: skip
    assert reported == [
        ("etl", "job.transition", running["etl"], "dead"),
        ("ml", "job.discovered", new, "starting"),
        ("ml", "job.transition", running["ml"], "dead"),
    ], "the unwatched queue's job is nobody's"
    assert not any("queue_name" in q for q in rounds.source.lists()[-5:])
    for q in ("etl", "ml"):
        assert rounds.counts(q) == rounds.world.counts(q)
    assert job_events(await rounds.round()) == [], "never twice"


async def test_queues_apart_from_busy_others_are_listed_apart() -> None:
    """Two watched queues in a project whose third queue runs 300 jobs: once a project-wide pass
    showed that, each queue's own pass is cheaper."""
    rounds = Rounds(("etl", "ml"), others=("busy",))
    for q in ("etl", "ml"):
        rounds.seed(q, finished=20, running=2)
    rounds.seed("busy", finished=0, running=300)
    await warmed(rounds)
    assert [scope for scope, _ in rounds.scopes] == ["project-wide", "per-queue"]
    assert "other jobs" in rounds.scopes[-1][1]
    rounds.source.requests.clear()
    await rounds.round()
    lists = rounds.source.lists()
    assert {q.get("queue_name") for q in lists} == {"etl", "ml"}
    assert len(lists) == 8, "each queue: three active states and its new jobs, a page each"


async def test_a_round_longer_than_half_an_interval_is_still_one_pass() -> None:
    """The round belongs to the polls that began with it, however long it takes: before, a poll
    that waited for a slow round found it stale and ran another, doubling the requests."""
    rounds = Rounds(("etl", "ml", "adhoc"))
    for q in ("etl", "ml", "adhoc"):
        rounds.seed(q, finished=5, running=2)
    await warmed(rounds)
    slow = rounds.source.on_list = lambda query: rounds.clock.advance(20)  # noqa: F841
    rounds.source.requests.clear()
    await rounds.round()
    assert len(rounds.source.lists()) == 4, "three active states and the new jobs, once"
