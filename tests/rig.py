"""The in-memory rig: a world, the fake API over it, and one poller of queue ``etl``, on a fake
clock. Shared by the poller's rule tests and the poll state machine."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from structlog.testing import capture_logs

from monitor.core.behaviour import BehaviourBook
from monitor.core.jobs import JobState
from monitor.output.events import EventLog
from monitor.output.metrics import Metrics
from monitor.output.scope import Scope
from monitor.poll.poller import PolledQueue, PollOutput, PollSettings, QueuePoller
from monitor.poll.strategy import IncrementalStrategy, StrategySetting
from monitor.simulator import ApiVariant, Lifecycle, World
from tests.fakes import FakeApi, FakeClock

__all__ = ["QUIET", "T0", "Rig", "job_events", "output"]

T0 = 1_700_000_000.0
QUIET = Lifecycle(arrival_interval=0)


class Rig:
    """A world, a source over it, and one poller of queue ``etl``."""

    def __init__(
        self,
        variant: ApiVariant | None = None,
        *,
        strategy: StrategySetting = "full",
        jobs: int = 40,
        source: FakeApi | None = None,
        queues: tuple[str, ...] = ("etl",),
        retries: int = 8,
        target: PolledQueue | None = None,
    ) -> None:
        self.world = World("p1", queues, seed=5, now_ms=int(T0 * 1000), lifecycle=QUIET,
                           initial_jobs=jobs)  # fmt: skip
        # Freeze the seeded jobs' own plans: the tests move jobs explicitly.
        for job in self.world.jobs.values():
            job.plan = []
        self.clock = FakeClock(T0, self.world)
        self.source = source or FakeApi(self.world, variant or ApiVariant())
        self.source.world = self.world
        self.metrics = Metrics("test")
        self.scope = Scope("p1")
        self.book = BehaviourBook()
        self.applied: list[QueuePoller] = []
        self.poller = QueuePoller(
            target or PolledQueue("etl"),
            self.source.client,
            PollOutput(EventLog("p1"), self.metrics.for_scope(self.scope), self.applied.append),
            PollSettings(
                30, page_size=4, retries_per_poll=retries, strategy=strategy, clock=self.clock
            ),
            behaviour=self.book,
        )

    async def until_incremental(self, polls: int = 4) -> list[MutableMapping[str, Any]]:
        """Poll (30 s apart) until the strategy is incremental; a few polls at most."""
        logs: list[MutableMapping[str, Any]] = []
        for _ in range(polls):
            if isinstance(self.poller.strategy, IncrementalStrategy):
                return logs
            logs += await self.poll()
            self.clock.advance(30)
        assert isinstance(self.poller.strategy, IncrementalStrategy), "never went incremental"
        return logs

    def incremental(self) -> IncrementalStrategy:
        strategy = self.poller.strategy
        assert isinstance(strategy, IncrementalStrategy)
        return strategy

    async def poll(self) -> list[MutableMapping[str, Any]]:
        with capture_logs() as logs:
            await self.poller.poll()
        return logs

    def sample(self, name: str, **labels: str) -> float | None:
        scope = {"project_id": self.scope.project_id, "region": self.scope.region}
        return self.metrics.registry.get_sample_value(name, scope | labels)

    def active(self) -> str:
        return next(j.id for j in self.world.jobs.values() if j.state is JobState.RUNNING)


def output() -> PollOutput:
    """Events and metrics of a poller no test reads them of."""
    return PollOutput(EventLog("p1"), Metrics("t").for_scope(Scope("p1")))


def job_events(logs: list[MutableMapping[str, Any]]) -> list[tuple[str, str, str]]:
    out = []
    for e in logs:
        if e["event"] == "job.transition":
            out.append((e["event"], e["job_id"], e["to_state"]))
        elif e["event"] in ("job.discovered", "job.vanished", "job.forgotten"):
            out.append((e["event"], e["job_id"], e.get("state") or e.get("last_state", "")))
    return out
