"""How one poll gathers what it observes, and which way of gathering a queue's polls use.

:class:`FullStrategy` pages through every job of the queue; its cost grows with the history the
API keeps, and it relies on nothing but the rows. :class:`IncrementalStrategy` lists the active
states with the API's ``state`` filter, the jobs created since the newest one already seen
(``order=CREATE_TIME_DESC`` + ``start``), and counts the terminal states from the ``total`` of
one-row requests, so its cost grows with the active and recently created jobs only; it is exact
only where the API honours those filters and ``total`` counts filtered rows, which
:func:`choose` and :func:`incremental_usable` check against the observed
:class:`~monitor.core.behaviour.ApiBehaviour`. Active jobs that left the listings are confirmed with
detail requests by the poller, as for a full listing, so both see every change.

Strategies hold no mutable state: a gather returns a :class:`PollResult`, including the watermark
it proposes, and the poller commits that in the same step as the snapshot, so a poll abandoned
after gathering changes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Literal

from monitor.core.behaviour import ApiBehaviour, PassFacts, Seen, TotalMeaning
from monitor.core.jobs import ACTIVE_STATES, TERMINAL_STATES, JobState
from monitor.core.snapshot import JobSnapshot
from monitor.dli.models import ListPage
from monitor.dli.source import JobSource
from monitor.poll.paging import Compact, Pass, Query, list_all
from monitor.poll.tasks import run_all

__all__ = [
    "AUTO_INCREMENTAL_AFTER",
    "EVERY_JOB",
    "RECENT_JOBS",
    "WATERMARK_MARGIN_MS",
    "FullStrategy",
    "IncrementalStrategy",
    "PollResult",
    "Strategy",
    "bracketed",
    "choose",
    "choose_scope",
    "count_terminal",
    "guess_sizes",
    "incremental_usable",
    "newest_created",
    "pages",
    "recount_by_total",
]

#: jobs created this long before the newest one seen are listed again: creation and visibility
#: in the listing are not strictly ordered (a job may show up a moment after a newer one)
WATERMARK_MARGIN_MS = 60 * 1000
#: the :attr:`PollResult.sizes` keys of a full listing and of the recent jobs' listing (an
#: active state's listing is keyed by the state)
EVERY_JOB = "all"
RECENT_JOBS = "recent"
#: with ``poll_strategy=auto``, a queue whose full listing takes more requests than this is
#: polled incrementally (a few requests for its active and new jobs)
AUTO_INCREMENTAL_AFTER = 10

StrategySetting = Literal["auto", "full", "incremental"]


@dataclass(slots=True)
class PollResult:
    """What one poll observed: its listing (several passes merged, for incremental polls) and
    what the listing alone does not say."""

    listing: Pass = field(default_factory=Pass)
    #: states counted by the API rather than from the snapshot
    totals: dict[JobState, int] = field(default_factory=dict)
    #: how many requests a full listing would take (known from any listing's ``total``)
    full_listing_requests: int = 0
    #: finished jobs created before this are history, not listed any more (incremental only)
    history_before_ms: int | None = None
    #: the watermark the next incremental poll starts from, once this poll is applied
    watermark_ms: int | None = None
    #: facts beyond the listing's own passes (the one-row count requests)
    probes: list[PassFacts] = field(default_factory=list)
    #: rows each pass listed (by :func:`pass_key`), the next poll's guess of its size
    sizes: dict[str, int] = field(default_factory=dict)
    #: the terminal counts asked for did not move while the listings were read (see
    #: :func:`bracketed`); ``False``: they were left out, to be asked again
    counts_settled: bool = True

    @property
    def facts(self) -> list[PassFacts]:
        return [*self.listing.facts, *self.probes]


class FullStrategy:
    """Every job of the queue, every poll. With ``probe``, also the ``total`` of one-row
    ``state`` requests for the terminal states, compared with the listing's own counts: what
    shows whether incremental polls could count from ``total``."""

    name = "full"

    def __init__(self, *, probe: bool = False) -> None:
        self.probe = probe

    async def gather(
        self,
        source: JobSource,
        queue: str | None,
        *,
        page_size: int,
        behaviour: ApiBehaviour,
        sizes: Mapping[str, int],
        compact: Compact | None = None,
    ) -> PollResult:
        listed: list[Pass] = []
        probed: dict[JobState, ListPage] = {}

        async def list_every_job() -> None:
            listed.append(
                await list_all(
                    source,
                    Query(queue),
                    page_size=page_size,
                    trust_total=behaviour.pages_by_total,
                    size_honoured=behaviour.honours_size(page_size),
                    expected_rows=sizes.get(EVERY_JOB),
                    compact=compact,
                )
            )

        async def probe(state: JobState) -> None:
            probed[state], _ = await source.list_page(
                offset=0, size=1, queue=queue, filters=Query(state=state).filters()
            )

        # The probes go beside the listing, not after it: a cold start's first poll is as
        # long as its listing.
        probes = [partial(probe, s) for s in sorted(TERMINAL_STATES)]
        await run_all([list_every_job, *(probes if self.probe and queue is not None else [])])
        listing = listed[0]
        result = PollResult(
            listing,
            # what the rows need, not what this pass happened to spend
            full_listing_requests=max(1, math.ceil(listing.listed / page_size)),
            sizes={EVERY_JOB: listing.listed} if listing.complete else {},
        )
        if probed and listing.complete:
            result.probes.extend(_probe_facts(listing, probed))
        return result


def _probe_facts(listing: Pass, probed: Mapping[JobState, ListPage]) -> list[PassFacts]:
    """What the one-row ``state`` requests beside a complete listing show about ``total``."""
    counts = dict.fromkeys(TERMINAL_STATES, 0)
    for state in listing.states():
        if state in counts:
            counts[state] += 1
    rows = listing.facts[0].rows
    facts = []
    for state, page in sorted(probed.items()):
        total = page.total
        # Jobs finish between the listing and the probe: only an exact match, or a total that
        # covers the whole queue for a state that does not, is evidence.
        clear = total is not None and (total == counts[state] or (total >= rows > counts[state]))
        facts.append(
            PassFacts(
                filtered_state=state,
                totals=frozenset({total}),
                rows=counts[state],
                settled=clear,
                foreign_state=any(j.state is not state for j in page.jobs),
            )
        )
    return facts


@dataclass(frozen=True, slots=True)
class IncrementalStrategy:
    """Active jobs and new jobs: the cost of what can have changed. The terminal states are
    counted by the poller (its count at the switch plus the changes since); with ``count``,
    this poll also asks the API for them (``total`` of one-row ``state`` requests)."""

    #: newest create_time seen; jobs created since (minus a margin) are listed each poll
    watermark_ms: int | None = None
    #: also count the terminal states from ``total`` (a recount, where ``total`` is filtered)
    count: bool = False
    name = "incremental"

    async def gather(
        self,
        source: JobSource,
        queue: str | None,
        *,
        page_size: int,
        behaviour: ApiBehaviour,
        sizes: Mapping[str, int],
        compact: Compact | None = None,
    ) -> PollResult:
        del compact  # its listings are of what can change: readings, every one
        active: dict[JobState, Pass] = {}
        counted: dict[JobState, int] = {}
        recent: list[Pass] = []
        trust = behaviour.pages_by_total
        honoured = behaviour.honours_size(page_size)
        since = None if self.watermark_ms is None else self.watermark_ms - WATERMARK_MARGIN_MS

        async def list_state(state: JobState) -> None:
            active[state] = await list_all(
                source,
                Query(queue, state),
                page_size=page_size,
                trust_total=trust,
                size_honoured=honoured,
                expected_rows=sizes.get(state.value),
            )

        async def list_recent() -> None:
            recent.append(
                await list_all(
                    source,
                    Query(queue, since_ms=since),
                    page_size=page_size,
                    trust_total=trust,
                    size_honoured=honoured,
                    expected_rows=sizes.get(RECENT_JOBS),
                )
            )

        async def list_what_can_change() -> None:
            await run_all([partial(list_state, s) for s in sorted(ACTIVE_STATES)] + [list_recent])

        settled = True
        if self.count and queue is not None:
            counted, settled = await bracketed(source, queue, list_what_can_change)
        else:
            await list_what_can_change()

        listing = Pass()
        for state in sorted(active):
            listing.merge(active[state])
        # New jobs may be in any state; an active one is in both listings, the same reading or a
        # later one, and either is a real state the job was in.
        listing.merge(recent[0], keep_existing=True)
        totals = counted
        everything = sum(totals.values()) + sum(len(v.jobs) for v in active.values())
        watermark = self.watermark_ms
        if recent[0].complete:
            created = [j.create_time for j in listing.jobs.values() if j.create_time is not None]
            watermark = max([*created, *([] if watermark is None else [watermark])], default=None)
        # else: a pass that read a job twice may have skipped another (rows moved while it paged
        # concurrently), so the window is listed again from where it began: a skipped job that
        # has finished since is never listed as active, and past the watermark it would be lost.
        passes = {state.value: p for state, p in active.items()} | {RECENT_JOBS: recent[0]}
        return PollResult(
            listing,
            totals=totals,
            full_listing_requests=math.ceil(everything / page_size),
            # What this poll listed began at ``since``: a finished job created before it is
            # history. (The new watermark is the next poll's: taken as this one's horizon, a job
            # created in the window and finished since was taken for history, never reported.)
            history_before_ms=since,
            watermark_ms=watermark,
            sizes={key: p.facts[0].rows for key, p in passes.items() if p.facts[0].settled},
            counts_settled=settled,
        )


Strategy = FullStrategy | IncrementalStrategy


def incremental_usable(result: PollResult, behaviour: ApiBehaviour, *, counted: bool) -> str | None:
    """Why an incremental poll must be discarded (``behaviour`` already includes what the poll
    itself showed), or ``None`` if it is exact. ``counted``: the poll asked for the terminal
    counts (a recount), which then must have come from a filtered ``total``."""
    blocker = behaviour.incremental_blocker()
    if blocker is not None:
        return blocker
    if any(f.foreign_state for f in result.facts):
        return "a state-filtered listing returned other states"
    if counted and not behaviour.counts_by_total:
        return "total is not yet shown to count the rows a state filter selects"
    if counted and result.counts_settled and len(result.totals) != len(TERMINAL_STATES):
        return "a terminal-state count came without a total"
    return None


def choose(
    setting: StrategySetting,
    queue: str | None,
    behaviour: ApiBehaviour,
    full_listing_requests: int,
) -> tuple[Literal["full", "incremental"], str, bool]:
    """The strategy for a queue's next polls: (name, reason, whether a full listing should
    probe ``total``, which tells whether recounts can be one-row requests). The one place where
    that is decided."""
    if setting == "full":
        return "full", "poll_strategy=full", False
    probe = queue is not None and behaviour.total is TotalMeaning.MATCHES_ROWS
    blocker = behaviour.incremental_blocker()
    if blocker is not None:
        return "full", blocker, False
    wanted = setting == "incremental" or full_listing_requests > AUTO_INCREMENTAL_AFTER
    if not wanted:
        return "full", f"a full listing takes {full_listing_requests} requests", probe
    return "incremental", f"a full listing takes {full_listing_requests} requests", False


def recount_by_total(queue: str | None, behaviour: ApiBehaviour) -> bool:
    """Whether a recount of the terminal states can be one-row requests (otherwise it is a full
    listing): a queue's ``total`` under a state filter is shown to count exactly."""
    return (
        queue is not None
        and behaviour.counts_by_total
        and behaviour.queue_filter is not Seen.IGNORED  # its totals would count other queues
    )


def guess_sizes(
    strategy: Strategy, snapshot: JobSnapshot | None, sizes: Mapping[str, int]
) -> Mapping[str, int]:
    """Each pass's expected size: what it listed last time (``sizes``), else what the snapshot
    holds, so the first incremental poll after a full listing (or a restart) pages at full
    speed without asking past the end."""
    if snapshot is None:
        return sizes
    if not isinstance(strategy, IncrementalStrategy):
        return {EVERY_JOB: len(snapshot), **sizes}
    wanted = [s.value for s in sorted(ACTIVE_STATES)] + [RECENT_JOBS]
    if all(key in sizes for key in wanted):
        return sizes
    guesses = {state.value: 0 for state in ACTIVE_STATES}
    for (_, state), n in snapshot.summary.counts.items():
        if state.value in guesses:
            guesses[state.value] += n
    if strategy.watermark_ms is not None:
        since = strategy.watermark_ms - WATERMARK_MARGIN_MS
        guesses[RECENT_JOBS] = sum(
            1 for t in snapshot.values() if t.create_time is not None and t.create_time >= since
        )
    return {**guesses, **sizes}


async def count_terminal(source: JobSource, queue: str) -> dict[JobState, int]:
    """The terminal states of ``queue`` counted by the API: the ``total`` of one one-row
    ``state`` request each (those that came without a total are left out)."""
    counted: dict[JobState, int] = {}

    async def count(state: JobState) -> None:
        page, _ = await source.list_page(
            offset=0, size=1, queue=queue, filters=Query(state=state).filters()
        )
        if page.total is not None:
            counted[state] = page.total

    await run_all([partial(count, s) for s in sorted(TERMINAL_STATES)])
    return counted


async def bracketed(
    source: JobSource, queue: str, listings: Callable[[], Awaitable[None]]
) -> tuple[dict[JobState, int], bool]:
    """The terminal counts of ``queue`` around ``listings``: asked before and after them, and
    kept only if both agree (``True``). Then no job finished while the listings were read, so
    the jobs they show finished are exactly those counted; a count asked beside the listings
    would count a job that finished after its listing was read, and its transition again in
    the next poll."""
    before = await count_terminal(source, queue)
    await listings()
    after = await count_terminal(source, queue)
    if before != after:
        return {}, False
    return before, True


def pages(rows: int, page_size: int) -> int:
    """Requests one listing of ``rows`` rows takes, its size known (an empty one takes one)."""
    return max(1, math.ceil(rows / page_size))


def choose_scope(
    per_queue: int, project_wide: int, *, queues: int, queue_filter_ignored: bool = False
) -> tuple[bool, str]:
    """Whether a round of incremental polls of ``queues`` configured queues lists the project
    once, split by the rows' queue (True), or each queue apart; and why. ``per_queue`` and
    ``project_wide`` are what a round takes either way, from the counts known."""
    if queue_filter_ignored:
        # Each queue's own pass would page through the whole project anyway.
        return True, "the API ignores the queue filter: one project-wide pass serves every queue"
    if queues < 2:
        return False, "one queue: its own pass lists nothing it does not need"
    if project_wide < per_queue:
        return True, (
            f"one project-wide pass for {queues} queues: about {project_wide} requests a round "
            f"instead of {per_queue}"
        )
    return False, (
        f"a pass per queue: about {per_queue} requests a round for {queues} queues, where "
        f"the project's other jobs make one project-wide pass {project_wide}"
    )


def newest_created(snapshot: JobSnapshot | None) -> int | None:
    """The newest ``create_time`` the snapshot knows: where incremental polls start from."""
    created = [t.create_time for t in snapshot.values() if t.create_time] if snapshot else []
    return max(created, default=None)
