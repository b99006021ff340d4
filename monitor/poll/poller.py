"""One poller per polled queue (a queue, or the whole project): list, confirm, diff, publish.

A poll either applies completely or not at all: the listing and the detail confirmations are
read first; then the pure diff runs, its changes are published, and the new snapshot and
the strategy's watermark are swapped in without any ``await`` in between, so a cancellation
(shutdown, poll timeout) can only land before the poll changed anything or after it is complete.

What the API was seen to do (:class:`~monitor.core.behaviour.ApiBehaviour`) is learnt from every
poll, applied or not, since it describes the API rather than the jobs. An incremental poll the
behaviour shows to be inexact (a filter ignored, ``total`` not counting filtered rows) is
discarded before anything is applied and the queue is listed in full instead. An active job
missing from the listing is reported vanished only when its detail answers the code table's
"does not exist" (:func:`~monitor.dli.errors.is_gone`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import anyio

from monitor.core.behaviour import BehaviourBook
from monitor.core.jobs import Job, JobState
from monitor.core.snapshot import JobSnapshot, Observation, StateSummary
from monitor.core.tracked import ActiveJob
from monitor.dli.errors import DLIError, UnknownJobState, is_gone
from monitor.dli.source import JobApi, JobSource, RetryBudget, RetryDetails
from monitor.output.events import EventLog
from monitor.output.metrics import TargetMetrics
from monitor.output.scope import Scope
from monitor.poll.strategy import (
    WATERMARK_MARGIN_MS,
    FullStrategy,
    IncrementalStrategy,
    PollResult,
    Strategy,
    StrategySetting,
    choose,
    incremental_usable,
)

__all__ = ["ALL_QUEUES", "PollOutput", "PollSettings", "PolledQueue", "QueuePoller", "next_start"]

#: the ``queue`` label of self metrics when no queues are configured (one project-wide poller)
ALL_QUEUES = "*"


@dataclass(frozen=True, slots=True)
class PolledQueue:
    """What one poller lists: one queue, or (``queue=None``) every job of the project."""

    queue: str | None

    @property
    def label(self) -> str:
        return self.queue or ALL_QUEUES


@dataclass(frozen=True, slots=True)
class PollSettings:
    """How a poller polls: its schedule, page size, retry budget and strategy, and its clock."""

    #: seconds between the starts of two polls
    interval: float
    page_size: int = 100
    #: retries one poll may spend across all its requests (and a quarter more per request)
    retries_per_poll: int = 8
    #: a poll running longer is cut off (default: three intervals, at least a minute)
    poll_timeout: float | None = None
    strategy: StrategySetting = "full"
    #: wall time: when the API's own timestamps are missing, and for the fixed grid of polls
    clock: Callable[[], float] = time.time


@dataclass(frozen=True, slots=True)
class PollOutput:
    """Where a poller's results go: the events, the target's metrics, and whoever is told of
    each applied poll."""

    events: EventLog
    metrics: TargetMetrics
    on_applied: Callable[[QueuePoller], None] | None = None


class QueuePoller:
    """Polls one queue (or the whole project) every ``interval`` seconds and publishes what
    changed. ``snapshot`` resumes from a saved one (no baseline then); ``behaviour`` is shared
    by the target's pollers (what was learnt of the API)."""

    def __init__(
        self,
        polled: PolledQueue,
        client: JobApi,
        output: PollOutput,
        settings: PollSettings,
        *,
        snapshot: JobSnapshot | None = None,
        behaviour: BehaviourBook | None = None,
    ) -> None:
        interval, strategy = settings.interval, settings.strategy
        self.polled = polled
        self._client = client
        self._book = behaviour or BehaviourBook()
        self._events = output.events
        self._metrics = metrics = output.metrics
        self.interval = interval
        self._page_size = settings.page_size
        self._retries = settings.retries_per_poll
        self.poll_timeout = settings.poll_timeout or max(60.0, 3 * interval)
        self._snapshot = snapshot
        self._on_applied = output.on_applied
        self._clock = settings.clock
        self._initialised: set[str] = set()
        self._rejected_seen = (0, 0)
        self._strategy_setting: StrategySetting = strategy
        self._strategy: Strategy = FullStrategy()
        #: states the API counted for us in the last poll (incremental listings)
        self._totals: dict[JobState, int] = {}
        self._unknown_detail_states: set[str] = set()
        horizon = snapshot.horizon_ms if snapshot is not None else None
        if polled.queue is not None and (
            strategy == "incremental" or (strategy == "auto" and horizon is not None)
        ):
            # Resume where a previous run's incremental polls left off.
            watermark = horizon + WATERMARK_MARGIN_MS if horizon is not None else None
            self._strategy = IncrementalStrategy(watermark)
        #: True once a poll succeeded (readiness)
        self.ready = False
        #: monotonic time the loop last made progress (liveness)
        self.heartbeat = 0.0
        #: polls failed in a row, and the (wall) time the first of them failed
        self._failed_polls = 0
        self._failing_since = 0.0
        metrics.init_target(polled.label)
        self._init_queues(self.export_queues)

    # -- what the metrics collector and the state file read ---------------------------------

    @property
    def snapshot(self) -> JobSnapshot | None:
        return self._snapshot

    @property
    def scope(self) -> Scope:
        return self._metrics.scope

    @property
    def export_queues(self) -> Iterable[str]:
        return [self.polled.queue] if self.polled.queue else []

    @property
    def summary(self) -> StateSummary | None:
        if self._snapshot is None:
            return None
        queue = self.polled.queue
        if queue is None or not self._totals:
            return self._snapshot.summary
        return self._snapshot.summary.with_counts(
            {(queue, state): n for state, n in self._totals.items()}
        )

    @property
    def tracked_jobs(self) -> int:
        return len(self._snapshot) if self._snapshot is not None else 0

    # -- the loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Poll forever, each poll starting ``interval`` after the previous one started; a slot
        missed because a poll ran long is skipped, not made up for."""
        next_at = anyio.current_time()
        while True:
            self.heartbeat = anyio.current_time()
            with anyio.move_on_after(self.poll_timeout) as scope:
                try:
                    await self.poll()
                except Exception as exc:  # noqa: BLE001 (a bug must not stop this queue, let alone the others)
                    self._failed(f"internal error: {type(exc).__name__}: {exc}", "InternalError", 1)
            if scope.cancelled_caught:
                self._failed(
                    f"poll did not finish within {self.poll_timeout:g} s", "PollTimeout", 1
                )
            now = anyio.current_time()
            next_at = next_start(next_at, now, self.interval)
            self.heartbeat = now
            await anyio.sleep_until(next_at)

    @property
    def strategy(self) -> Strategy:
        """How the next poll gathers (read-only: it changes only when a poll is applied)."""
        return self._strategy

    async def poll(self) -> bool:
        """One poll; True if it was applied."""
        label = self.polled.label
        started = time.perf_counter()
        budget = RetryBudget(self._retries)

        def on_retry(retry: RetryDetails) -> None:
            error = retry.error
            self._events.poll_failed(
                label, str(error), error.error_code, retry.attempt, retry.delay, final=False
            )

        source = self._client.for_poll(budget, on_retry)
        strategy = self._strategy
        try:
            result = await self._gather(source, strategy)
            if isinstance(strategy, IncrementalStrategy):
                why = incremental_usable(result, self._book.current)
                if why is not None:
                    # Nothing of this poll was applied, so nothing was forgotten: list it all.
                    strategy = FullStrategy(probe=True)
                    self._switch(strategy, f"{why}; listing every job")
                    result = await self._gather(source, strategy)
            listing = result.listing
            missing = self._snapshot.missing(listing.jobs) if self._snapshot is not None else []
            confirmed, gone = await self._confirm(source, missing)
        except DLIError as exc:
            self._failed(str(exc), exc.error_code, budget.spent + 1)
            return False
        finally:
            self._metrics.poll_took(label, time.perf_counter() - started)

        if (listing.rejected, listing.unknown_state) != self._rejected_seen:
            # Logged when the count changes, not on every poll, so a persistently odd row is
            # one line in the log and a steady rate in the metric.
            self._events.rows_rejected(
                label, listing.rejected, listing.unknown_state, listing.request_id
            )
            self._rejected_seen = (listing.rejected, listing.unknown_state)
        self._metrics.rows_rejected(label, "malformed", listing.rejected)
        self._metrics.rows_rejected(label, "unknown_state", listing.unknown_state)

        self._apply(
            Observation(listing.jobs, confirmed, gone, listing.complete, result.history_before_ms),
            strategy,
            result,
        )
        return True

    async def _gather(self, source: JobSource, strategy: Strategy) -> PollResult:
        result = await strategy.gather(
            source, self.polled.queue, page_size=self._page_size, behaviour=self._book.current
        )
        self._book.learn(result.facts)
        return result

    def _next_strategy(self, current: Strategy, result: PollResult) -> Strategy:
        """The strategy of the next poll, given what this (applied) poll showed."""
        name, reason, probe = choose(
            self._strategy_setting,
            self.polled.queue,
            self._book.current,
            result.full_listing_requests,
        )
        strategy: Strategy
        if name == "incremental":
            if isinstance(current, IncrementalStrategy):
                return IncrementalStrategy(result.watermark_ms)
            snapshot = self._snapshot.values() if self._snapshot else ()
            created = [t.create_time for t in snapshot if t.create_time]
            strategy = IncrementalStrategy(max(created, default=None))
        else:
            strategy = FullStrategy(probe=probe)
            if isinstance(current, FullStrategy):
                return strategy
        self._switch(strategy, reason)
        return strategy

    def _switch(self, strategy: Strategy, reason: str) -> None:
        self._events.strategy(self.polled.label, strategy.name, reason)

    async def _confirm(
        self, source: JobSource, missing: list[ActiveJob]
    ) -> tuple[dict[str, Job], frozenset[str]]:
        """Detail requests for active jobs missing from the listing. A job whose request fails
        stays unconfirmed (unchanged in the snapshot) until a later poll."""
        confirmed: dict[str, Job] = {}
        gone: set[str] = set()

        async def confirm(tracked: ActiveJob) -> None:
            try:
                job = await source.get_job(tracked.id, queue=tracked.queue)
            except UnknownJobState as exc:
                if exc.state not in self._unknown_detail_states:  # logged once per spelling
                    self._unknown_detail_states.add(exc.state)
                    self._events.rows_rejected(self.polled.label, 0, 1, exc.request_id)
                self._metrics.rows_rejected(self.polled.label, "unknown_state")
                return
            except DLIError as exc:
                if is_gone(exc):
                    gone.add(tracked.id)
                return  # anything else leaves the job unconfirmed until a later poll
            confirmed[job.id] = job

        if missing:
            async with anyio.create_task_group() as tg:
                for tracked in missing:
                    tg.start_soon(confirm, tracked)
        return confirmed, frozenset(gone)

    def _apply(self, observation: Observation, strategy: Strategy, result: PollResult) -> None:
        """Publish and swap in the poll's result, its strategy's watermark and API counts
        included. No await here: it happens whole or not at all."""
        label = self.polled.label
        now = self._clock()
        now_ms = int(now * 1000)
        self._totals = result.totals
        if self._snapshot is None:
            snapshot = JobSnapshot.baseline(
                observation.listed.values(), now_ms=now_ms, horizon_ms=observation.history_before_ms
            )
            self._init_queues(snapshot.summary.queues())
            self._snapshot = snapshot  # so that the baseline counts include the API's totals
            summary = self.summary
            assert summary is not None
            for queue, counts in _counts_by_queue(summary, self.export_queues).items():
                self._events.baseline(queue, counts)
        else:
            diff = self._snapshot.diff(observation, now_ms=now_ms)
            snapshot = diff.snapshot
            self._init_queues(snapshot.summary.queues())
            for change in diff.changes:
                queue = change.job.queue or label
                self._events.change(queue, change)
                self._metrics.record(queue, change)
        self._snapshot = snapshot
        self._strategy = self._next_strategy(strategy, result)
        self._metrics.poll_succeeded(label, now)
        if self._failed_polls:
            self._events.poll_recovered(label, self._failed_polls, now - self._failing_since)
            self._failed_polls = 0
        self.ready = True
        if self._on_applied is not None:
            self._on_applied(self)

    def _failed(self, error: str, code: str, attempt: int) -> None:
        label = self.polled.label
        if not self._failed_polls:
            self._failing_since = self._clock()
        self._failed_polls += 1
        self._metrics.poll_failed(label)
        self._events.poll_failed(label, error, code, attempt, self.interval, final=True)

    def _init_queues(self, queues: Iterable[str]) -> None:
        for queue in queues:
            if queue not in self._initialised:
                self._metrics.init_queue(queue)
                self._initialised.add(queue)


def next_start(started: float, now: float, interval: float) -> float:
    """When the poll after one that started at ``started`` starts, seen at ``now``: one interval
    later, or if the poll ran past that, the first slot of the same grid still ahead (missed
    slots are skipped, not made up for)."""
    due = started + interval
    if due < now:
        due += math.ceil((now - due) / interval) * interval
    return due


def _counts_by_queue(
    summary: StateSummary, queues: Iterable[str]
) -> Mapping[str, dict[JobState, int]]:
    result: dict[str, dict[JobState, int]] = {q: {} for q in queues}
    for (queue, state), count in summary.counts.items():
        result.setdefault(queue, {})[state] = count
    return result
