"""One project-wide pass per round, split by the rows' queue, for a target's queues.

A round of incremental polls costs a few requests per queue (each active state, and the new
jobs), however quiet: with fifty queues, two hundred. Listing the active states and the new jobs
once for the whole project (no ``queue_name``) and giving each queue the rows whose queue is its
own costs a few requests per round whatever the number of queues, unless the project's other
queues are much busier than the configured ones: :func:`~monitor.poll.strategy.choose_scope`
decides, from the counts known, before each round.

The pollers keep their own loops, snapshots, counts and failures; the first of them to poll in
a round runs the pass (on its own retry budget) and the others of that round take its result.
Each poller commits its own watermark when it applies its share, and a pass starts from the
oldest of them, so a poll abandoned after the pass (a timeout) loses nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import anyio

from monitor.core.behaviour import BehaviourBook, Seen
from monitor.core.jobs import ACTIVE_STATES, Job, JobState
from monitor.core.snapshot import StateSummary
from monitor.dli.errors import DLIError
from monitor.dli.source import JobSource
from monitor.poll.paging import Pass
from monitor.poll.strategy import (
    RECENT_JOBS,
    IncrementalStrategy,
    PollResult,
    Strategy,
    choose_scope,
    pages,
)

__all__ = ["ProjectPass", "SharedQueue"]


class SharedQueue(Protocol):
    """What the pass reads of a poller it may serve."""

    @property
    def queue(self) -> str | None: ...

    @property
    def strategy(self) -> Strategy: ...

    @property
    def summary(self) -> StateSummary | None: ...

    @property
    def recent_rows(self) -> int:
        """Rows its own last pass of new jobs listed (0 if none yet)."""
        ...


@dataclass(slots=True)
class _Round:
    started: float
    runner: int
    done: anyio.Event = field(default_factory=anyio.Event)
    result: PollResult | None = None
    error: DLIError | None = None
    #: the result's rows by queue (``None``: some came without a queue)
    by_queue: dict[str, dict[str, Job]] | None = None


class ProjectPass:
    """The project-wide pass of one target's incremental pollers; ``on_scope`` is told each
    time the choice between it and per-queue passes changes (``"project-wide"`` or
    ``"per-queue"``), with the reason."""

    def __init__(
        self,
        book: BehaviourBook,
        *,
        page_size: int,
        interval: float,
        on_scope: Callable[[str, str], None] = lambda scope, reason: None,
        clock: Callable[[], float] = anyio.current_time,
    ) -> None:
        self._book = book
        self._page_size = page_size
        self._interval = interval
        self._on_scope = on_scope
        self._clock = clock  # which round a poll belongs to: the pollers' own schedule
        self._pollers: list[SharedQueue] = []
        self._sizes: dict[str, int] = {}
        self._project_wide: bool | None = None
        self._decided_at = 0.0
        #: False once a pass had rows without a queue: they cannot be given to a queue
        self._splittable = True
        self._running: _Round | None = None
        self._latest: _Round | None = None
        #: the round each poller last took its share of
        self._taken: dict[int, _Round] = {}

    def serve(self, pollers: Sequence[SharedQueue]) -> None:
        """The pollers this pass may serve (those of this replica's queues)."""
        self._pollers = list(pollers)

    def serves(self, poller: SharedQueue) -> bool:
        """Whether ``poller``'s next incremental poll takes its share of a project-wide pass."""
        if poller.queue is None or poller not in self._pollers:
            return False
        if not isinstance(poller.strategy, IncrementalStrategy) or not self._splittable:
            return False
        # Decided once a round, not once a poller: the costs cover every queue.
        now = self._clock()
        if self._project_wide is None or now - self._decided_at >= self._interval / 2:
            self._decided_at = now
            self._choose()
        return bool(self._project_wide)

    def _incremental(self) -> list[SharedQueue]:
        return [p for p in self._pollers if isinstance(p.strategy, IncrementalStrategy)]

    def _choose(self) -> bool:
        pollers = self._incremental()
        per_queue = project = 0
        totals = dict.fromkeys([s.value for s in ACTIVE_STATES] + [RECENT_JOBS], 0)
        for poller in pollers:
            counts = _active_counts(poller.summary)
            for state in ACTIVE_STATES:
                per_queue += pages(counts.get(state, 0), self._page_size)
                totals[state.value] += counts.get(state, 0)
            per_queue += pages(poller.recent_rows, self._page_size)
            totals[RECENT_JOBS] += poller.recent_rows
        for key, rows in totals.items():
            # What the last project-wide pass listed, the other queues' jobs included; until
            # there was one, what the configured queues hold.
            project += pages(self._sizes.get(key, rows), self._page_size)
        project_wide, reason = choose_scope(
            per_queue,
            project,
            queues=len(pollers),
            queue_filter_ignored=self._book.current.queue_filter is Seen.IGNORED,
        )
        if project_wide is not self._project_wide:
            self._project_wide = project_wide
            self._on_scope("project-wide" if project_wide else "per-queue", reason)
        return project_wide

    async def share(self, poller: SharedQueue, source: JobSource) -> PollResult | None:
        """``poller``'s share of this round's pass: run it (through ``source``) unless another
        poller of the round already did or is doing so. ``None`` if the pass cannot be split:
        rows came without a queue (the poller lists its queue itself then)."""
        assert poller.queue is not None
        round_ = await self._round(poller, source)
        assert round_.result is not None
        if round_.by_queue is None:
            self._splittable = False
            return None
        jobs = round_.by_queue.get(poller.queue, {})
        return _slice(round_.result, jobs, runner=round_.runner == id(poller))

    async def _round(self, poller: SharedQueue, source: JobSource) -> _Round:
        key = id(poller)
        # A round belongs to the polls that began within half an interval of its start: judged
        # from when this poll began, however long the round it waits for takes.
        asked = self._clock()
        fresh = asked - self._interval / 2
        while True:
            latest = self._latest
            if (
                latest is not None
                and latest.started >= fresh
                and self._taken.get(key) is not latest
            ):
                self._taken[key] = latest
                return latest
            running = self._running
            if running is not None and running.started >= fresh:
                await running.done.wait()
                if running.error is not None:
                    raise running.error
                continue  # its result is the latest now (or it was cut off: run another)
            round_ = self._running = _Round(self._clock(), key)
            try:
                round_.result = await self._gather(source)
                round_.by_queue = _by_queue(round_.result.listing)
                self._latest = round_
                self._taken[key] = round_
            except DLIError as exc:
                round_.error = exc
                raise
            finally:
                round_.done.set()
                if self._running is round_:
                    self._running = None
            return round_

    async def _gather(self, source: JobSource) -> PollResult:
        # From the oldest watermark a poller committed: a share not applied is listed again.
        marks = [p.strategy.watermark_ms for p in self._incremental()]  # type: ignore[union-attr]
        oldest = None if None in marks or not marks else min(m for m in marks if m is not None)
        result = await IncrementalStrategy(oldest).gather(
            source,
            None,
            page_size=self._page_size,
            behaviour=self._book.current,
            sizes=self._sizes,
        )
        self._book.learn(result.facts)
        self._sizes.update(result.sizes)
        return result


def _active_counts(summary: StateSummary | None) -> dict[JobState, int]:
    counts: dict[JobState, int] = {}
    if summary is not None:
        for (_, state), n in summary.counts.items():
            if not state.terminal:
                counts[state] = counts.get(state, 0) + n
    return counts


def _by_queue(listing: Pass) -> dict[str, dict[str, Job]] | None:
    """The listing's rows by their queue, once per round; ``None`` if a row has no queue (it
    cannot be given to any)."""
    split: dict[str, dict[str, Job]] = {}
    for job_id, job in listing.jobs.items():
        if not job.queue:
            return None
        split.setdefault(job.queue, {})[job_id] = job
    return split


def _slice(result: PollResult, jobs: dict[str, Job], *, runner: bool) -> PollResult:
    """A queue's share (``jobs``) of a project-wide result, with the pass's own facts (whether
    a filter held shows in the whole pass, not in one queue's rows); the rows that could not be
    read are counted once, by the poller that ran the pass."""
    whole = result.listing
    listing = Pass(
        jobs,
        logs={job_id: whole.logs[job_id] for job_id in jobs.keys() & whole.logs.keys()},
        complete=whole.complete,
        rejected=whole.rejected if runner else 0,
        unknown_state=whole.unknown_state if runner else 0,
        request_id=whole.request_id,
        facts=list(whole.facts),
        cut_short=whole.cut_short,
    )
    # This queue's share of each listing: its own passes' guess, should it list alone again.
    sizes = dict.fromkeys([s.value for s in ACTIVE_STATES], 0)
    recent = 0
    since = result.history_before_ms
    for job in jobs.values():
        if job.state.value in sizes:
            sizes[job.state.value] += 1
        if since is None or (job.create_time is not None and job.create_time >= since):
            recent += 1
    return PollResult(
        listing,
        history_before_ms=result.history_before_ms,
        watermark_ms=result.watermark_ms,
        sizes={**sizes, RECENT_JOBS: recent},
    )
