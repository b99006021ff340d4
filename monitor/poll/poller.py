"""One poller per polled queue (a queue, or the whole project): list, confirm, diff, publish.

A poll either applies completely or not at all: the listing and the detail confirmations are
read first; then the pure diff runs, its changes are published, and the new snapshot and
the strategy's watermark are swapped in without any ``await`` in between, so a cancellation
(shutdown, poll timeout) can only land before the poll changed anything or after it is complete.

What the API was seen to do (:class:`~monitor.core.behaviour.ApiBehaviour`) is learnt from every
poll, applied or not, since it describes the API rather than the jobs. An incremental poll the
behaviour shows to be inexact (a filter ignored) is discarded before anything is applied and the
queue is listed in full instead. An active job missing from the listing is reported vanished
only when its detail answers the code table's "does not exist"
(:func:`~monitor.dli.errors.is_gone`).

Incremental polls keep the terminal-state counts (:mod:`monitor.core.counts`) and recount them
every ``recount_interval``: by one-row totals (before and after the listings) where ``total``
is shown to count filtered rows, otherwise by a full listing paced to a share of the ceiling.
Only those counts may lag history expiry, and by no more than that interval; events never
depend on them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

import anyio

from monitor.core.behaviour import BehaviourBook
from monitor.core.counts import KeptCounts, counts_by_queue
from monitor.core.failure import explain
from monitor.core.jobs import TERMINAL_STATES, Job, JobState
from monitor.core.resume import ResumeState
from monitor.core.snapshot import (
    Change,
    Discovered,
    JobSnapshot,
    Observation,
    StateSummary,
    Transition,
)
from monitor.core.tracked import ActiveJob, FinishedJob
from monitor.dli.errors import DLIError
from monitor.dli.source import JobApi, JobSource, RetryBudget, RetryDetails
from monitor.output.events import EventLog
from monitor.output.metrics import TargetMetrics
from monitor.output.scope import Scope
from monitor.poll.confirm import confirm
from monitor.poll.pacing import PacedSource
from monitor.poll.paging import Compact
from monitor.poll.settings import ALL_QUEUES, PolledQueue, PollSettings, next_start
from monitor.poll.shared import ProjectPass
from monitor.poll.strategy import (
    RECENT_JOBS,
    WATERMARK_MARGIN_MS,
    FullStrategy,
    IncrementalStrategy,
    PollResult,
    Strategy,
    StrategySetting,
    bracketed,
    choose,
    guess_sizes,
    incremental_usable,
    newest_created,
    recount_by_total,
)

__all__ = ["ALL_QUEUES", "PollOutput", "PollSettings", "PolledQueue", "QueuePoller", "next_start"]


@dataclass(frozen=True, slots=True)
class PollOutput:
    """Where a poller's results go: the events, the target's metrics, and whoever is told of
    each applied poll."""

    events: EventLog
    metrics: TargetMetrics
    on_applied: Callable[[QueuePoller], None] | None = None


class QueuePoller:
    """Polls one queue (or the whole project) every ``interval`` seconds and publishes what
    changed. ``snapshot`` resumes from a saved one (no baseline then), and ``resume`` from the
    counts and pass sizes saved beside it; ``behaviour`` is shared by the target's pollers
    (what was learnt of the API)."""

    def __init__(  # noqa: PLR0913 (what it polls and through what, and what it resumes from)
        self,
        polled: PolledQueue,
        client: JobApi,
        output: PollOutput,
        settings: PollSettings,
        *,
        snapshot: JobSnapshot | None = None,
        behaviour: BehaviourBook | None = None,
        resume: ResumeState | None = None,
        shared: ProjectPass | None = None,
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
        # The first poll probes total (unless polls are full anyway): its verdict settles then.
        self._strategy: Strategy = FullStrategy(
            probe=polled.queue is not None and strategy != "full"
        )
        self._recount_interval = settings.recount_interval
        self._recount_rps = settings.recount_rps
        #: the terminal counts incremental polls keep between recounts
        self._kept = KeptCounts()
        #: rows each pass listed last time (the next pass's guess of its size)
        self._sizes: dict[str, int] = {}
        self._recounting = False
        self._shared = shared
        self._rows_listed = 0
        if resume is not None and snapshot is not None:
            counted = resume.counted_at_ms
            self._kept = KeptCounts(resume.kept, None if counted is None else counted / 1000)
            self._sizes = dict(resume.sizes)
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
        return self._kept.summary(self._snapshot.summary)

    @property
    def resume_state(self) -> ResumeState:
        """What a restart needs besides the snapshot (as of the last applied poll)."""
        counts = self._kept.counts
        kept = dict(counts) if counts is not None else None
        at = self._kept.counted_at
        counted = None if at is None else int(at * 1000)
        return ResumeState(kept, counted, dict(self._sizes))

    @property
    def rows_listed(self) -> int:
        """Jobs the last applied poll listed."""
        return self._rows_listed

    @property
    def queue(self) -> str | None:
        return self.polled.queue

    @property
    def recent_rows(self) -> int:
        """Rows the last pass of new jobs listed for this queue (0 if none yet)."""
        return self._sizes.get(RECENT_JOBS, 0)

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
        strategy = self._recount(self._strategy)
        #: a full listing in place of an incremental poll, to recount (not a switch)
        self._recounting = isinstance(strategy, FullStrategy) and strategy is not self._strategy
        try:
            result = await self._gather(self._paced(source, strategy), strategy)
            if isinstance(strategy, IncrementalStrategy):
                why = incremental_usable(result, self._book.current, counted=strategy.count)
                if why is not None:
                    # Nothing of this poll was applied, so nothing was forgotten: list it all.
                    strategy = FullStrategy(probe=True)
                    self._recounting = False
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
            Observation(
                listing.jobs,
                confirmed,
                gone,
                listing.complete,
                result.history_before_ms,
                finished=listing.finished,
            ),
            strategy,
            result,
        )
        return True

    def _recount(self, strategy: Strategy) -> Strategy:
        """The strategy of this poll: the next one, or a recount of the terminal states when
        one is due (incremental polls only: a full listing counts them anyway)."""
        if not isinstance(strategy, IncrementalStrategy):
            return strategy
        if not self._kept.due(self._clock(), self._recount_interval):
            return strategy
        if recount_by_total(self.polled.queue, self._book.current):
            return replace(strategy, count=True)
        # The listing probes total where it may yet prove filtered: later recounts are then
        # two one-row requests.
        return FullStrategy(probe=self.polled.queue is not None)

    def _paced(self, source: JobSource, strategy: Strategy) -> JobSource:
        """A recount that lists every job is paced to its share of the ceiling, so that it
        never delays the other queues' polls for long."""
        if self._recounting and self._recount_rps is not None:
            return PacedSource(source, self._recount_rps)
        return source

    def _compact(self) -> Compact:
        """Which listed rows a full listing keeps as compact records: every finished one of a
        baseline (nothing is reported of them), and later the ones the snapshot already holds
        as finished (the snapshot's own record: nothing is allocated for them)."""
        snapshot = self._snapshot
        if snapshot is None:
            return lambda job: FinishedJob.of(job) if job.state.terminal else None
        return lambda job: snapshot.finished_record(job.id)

    async def _gather(self, source: JobSource, strategy: Strategy) -> PollResult:
        queue, shared = self.polled.queue, self._shared
        if isinstance(strategy, IncrementalStrategy) and shared is not None and shared.serves(self):
            shares: list[PollResult | None] = []

            async def share() -> None:  # the pass learns from its own facts
                shares.append(await shared.share(self, source))

            totals: dict[JobState, int] = {}
            settled = True
            if strategy.count and queue is not None:
                totals, settled = await bracketed(source, queue, share)
            else:
                await share()
            result = shares[0]
            if result is not None:
                result.totals, result.counts_settled = totals, settled
                return result
        result = await strategy.gather(
            source,
            self.polled.queue,
            page_size=self._page_size,
            behaviour=self._book.current,
            sizes=guess_sizes(strategy, self._snapshot, self._sizes),
            compact=self._compact(),
        )
        self._book.learn(result.facts)
        return result

    def _next_strategy(self, current: Strategy, result: PollResult) -> Strategy:
        """The strategy of the next poll, given what this (applied) poll showed."""
        requests = result.full_listing_requests
        summary = self.summary
        if isinstance(current, IncrementalStrategy) and summary is not None:
            # What a full listing would take, from the counts kept: an incremental poll lists
            # only what can have changed.
            requests = max(1, math.ceil(sum(summary.counts.values()) / self._page_size))
        name, reason, probe = choose(
            self._strategy_setting, self.polled.queue, self._book.current, requests
        )
        strategy: Strategy
        # A recount's full listing stands in for an incremental poll: the switch, if any, is
        # from the incremental polls.
        previous = self._strategy if self._recounting else current
        if name == "incremental":
            if isinstance(current, IncrementalStrategy):
                return IncrementalStrategy(result.watermark_ms)
            strategy = IncrementalStrategy(newest_created(self._snapshot))
            if isinstance(previous, IncrementalStrategy):
                return strategy
        else:
            strategy = FullStrategy(probe=probe)
            if isinstance(previous, FullStrategy):
                return strategy
        self._switch(strategy, reason)
        return strategy

    def _switch(self, strategy: Strategy, reason: str) -> None:
        self._events.strategy(self.polled.label, strategy.name, reason)

    async def _confirm(
        self, source: JobSource, missing: list[ActiveJob]
    ) -> tuple[dict[str, Job], frozenset[str]]:
        """Detail requests for active jobs missing from the listing (see :func:`confirm`)."""
        confirmed = await confirm(source, missing)
        for state, request_id in confirmed.unknown_states:
            if state not in self._unknown_detail_states:  # logged once per spelling
                self._unknown_detail_states.add(state)
                self._events.rows_rejected(self.polled.label, 0, 1, request_id)
            self._metrics.rows_rejected(self.polled.label, "unknown_state")
        return confirmed.jobs, confirmed.gone

    def _apply(self, observation: Observation, strategy: Strategy, result: PollResult) -> None:
        """Publish and swap in the poll's result, its strategy's watermark and API counts
        included. No await here: it happens whole or not at all."""
        label = self.polled.label
        now = self._clock()
        now_ms = int(now * 1000)
        before = self._snapshot
        if self._snapshot is None:
            snapshot = JobSnapshot.baseline(
                observation.listed.values(),
                now_ms=now_ms,
                horizon_ms=observation.history_before_ms,
                finished=observation.finished,
            )
            self._init_queues(snapshot.summary.queues())
            self._snapshot = snapshot  # so that the baseline counts include the API's totals
            summary = self.summary
            assert summary is not None
            for queue, counts in counts_by_queue(summary, self.export_queues).items():
                self._events.baseline(queue, counts)
        else:
            diff = self._snapshot.diff(observation, now_ms=now_ms)
            snapshot = diff.snapshot
            self._init_queues(snapshot.summary.queues())
            logs = result.listing.logs
            for change in diff.changes:
                queue = change.job.queue or label
                failure = None
                if _died(change):
                    failure = explain(logs.get(change.job.id))
                    self._metrics.job_failed(queue, failure.reason)
                self._events.change(queue, change, failure)
                self._metrics.record(queue, change)
        self._count(before, strategy, result, diff.changes if before is not None else [], now)
        self._sizes.update(result.sizes)
        self._snapshot = snapshot
        self._rows_listed = result.listing.listed
        self._strategy = self._next_strategy(strategy, result)
        self._metrics.poll_succeeded(label, now)
        if self._failed_polls:
            self._events.poll_recovered(label, self._failed_polls, now - self._failing_since)
            self._failed_polls = 0
        self.ready = True
        if self._on_applied is not None:
            self._on_applied(self)

    def _count(
        self,
        before: JobSnapshot | None,
        strategy: Strategy,
        result: PollResult,
        changes: list[Change],
        now: float,
    ) -> None:
        """Keep the terminal counts: a full listing counts them itself; the first incremental
        poll after it starts from its counts, and each one adds the jobs it saw finish; a
        recount by ``total`` replaces the queue's counts."""
        if isinstance(strategy, FullStrategy):
            self._kept.listed_everything(now)
            return
        self._kept.observed(before.summary if before is not None else None, changes)
        complete = len(result.totals) == len(TERMINAL_STATES)
        if strategy.count and self.polled.queue is not None and result.counts_settled and complete:
            self._kept.recounted(self.polled.queue, result.totals, now)
        # else: jobs finished while it listed (or a total was missing): asked again next poll

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


def _died(change: Change) -> bool:
    match change:
        case Transition(to_state=JobState.DEAD) | Discovered(job=Job(state=JobState.DEAD)):
            return True
        case _:
            return False
