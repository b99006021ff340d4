"""Offset paging that ends on evidence from the rows, over any :class:`JobSource`.

A pass ends on an empty page, or on a short page (fewer rows than asked). A short *first* page
may instead be a server-side cap on ``size``, so it is confirmed by one probe at the next offset
(unless a trusted ``total`` says the page holds every row).
``total`` bounds the pass only when the API has been seen to count the rows it lists
(``trust_total``): then the pages below it are fetched concurrently. Otherwise pages are read one
after another, because a ``total`` that counts every job of the project would have us fetch
hundreds of empty pages. Either way at most one request goes past the end of the data.

Rows outside the filters that were sent (another queue, another state, created before ``start``)
are dropped and reported in the pass's :class:`~monitor.core.behaviour.PassFacts`, so an API that
ignores a filter never shows the poller a job that is not the target's.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field

import anyio

from monitor.core.behaviour import PassFacts
from monitor.core.failure import RawLog
from monitor.core.jobs import Job, JobState
from monitor.core.tracked import FinishedJob
from monitor.dli.errors import MalformedResponse
from monitor.dli.models import ListPage
from monitor.dli.source import JobSource
from monitor.poll.tasks import run_all

__all__ = ["MAX_PAGES", "Compact", "Pass", "Query", "list_all"]

#: a server answering full pages forever must not keep us paging forever; 10 million rows at the
#: default page size (10,000 was too few: a queue with a million finished jobs in its history
#: could never be listed, so its first poll failed forever)
MAX_PAGES = 100_000
NEWEST_FIRST = "CREATE_TIME_DESC"


@dataclass(frozen=True, slots=True)
class Query:
    """The filters of one listing. ``order`` is always sent, so that what the rows are checked
    against is what was asked for, not the API's undocumented default."""

    queue: str | None = None
    state: JobState | None = None
    #: ``start``: jobs created at or after this (Unix ms)
    since_ms: int | None = None
    order: str = NEWEST_FIRST

    def filters(self) -> list[tuple[str, str]]:
        params = [("order", self.order)]
        if self.state is not None:
            params.append(("state", self.state.value))
        if self.since_ms is not None:
            params.append(("start", str(max(0, self.since_ms))))
        return params


@dataclass(slots=True)
class Pass:
    """A paging pass (or several merged), deduplicated by job id.

    ``complete``: the pass ended on evidence, no job was read twice and ``total`` (where there
    is one) did not move, i.e. no job can have slipped between two pages.
    """

    jobs: dict[str, Job] = field(default_factory=dict)
    complete: bool = True
    requests: int = 0
    rejected: int = 0
    unknown_state: int = 0
    request_id: str | None = None
    facts: list[PassFacts] = field(default_factory=list)
    #: paging stopped at rows older than ``start`` (an API ignoring it), not at the end
    cut_short: bool = False
    #: rows kept as compact records rather than readings (see ``compact`` of :func:`list_all`)
    finished: dict[str, FinishedJob] = field(default_factory=dict)
    #: the ``log`` records of each dead job listed as a reading (why it died)
    logs: dict[str, RawLog] = field(default_factory=dict)

    @property
    def listed(self) -> int:
        """Jobs listed, as readings and as compact records."""
        return len(self.jobs) + len(self.finished)

    def states(self) -> Iterator[JobState]:
        """The state of every job listed."""
        for job in self.jobs.values():
            yield job.state
        for record in self.finished.values():
            yield record.state

    def merge(self, other: Pass, *, keep_existing: bool = False) -> None:
        """Add another pass (of the same target) to this one; it is complete only if both are.
        With ``keep_existing``, a job already here keeps its reading."""
        if keep_existing:
            for job_id, job in other.jobs.items():
                if job_id not in self.finished:
                    self.jobs.setdefault(job_id, job)
            for job_id, record in other.finished.items():
                if job_id not in self.jobs:
                    self.finished.setdefault(job_id, record)
        else:
            for job_id in other.jobs.keys() & self.finished.keys():
                del self.finished[job_id]
            for job_id in other.finished.keys() & self.jobs.keys():
                del self.jobs[job_id]
            self.jobs.update(other.jobs)
            self.finished.update(other.finished)
        self.logs.update({k: v for k, v in other.logs.items() if k in self.jobs})
        self.complete = self.complete and other.complete
        self.requests += other.requests
        self.rejected += other.rejected
        self.unknown_state += other.unknown_state
        self.request_id = other.request_id or self.request_id
        self.facts.extend(other.facts)


#: a row's compact record in place of its reading, or ``None`` to keep the reading
Compact = Callable[[Job], FinishedJob | None]


@dataclass(frozen=True, slots=True)
class _Kept:
    """What a pass keeps of a page: its counts, and each row's id and reading (or compact
    record). The page's own readings are dropped as soon as it arrives."""

    total: int | None
    rows: int
    rejected: int
    unknown_state: int
    spelling: str | None
    ids: tuple[str, ...]
    readings: tuple[Job | FinishedJob, ...]
    logs: Mapping[str, RawLog]

    @classmethod
    def of(cls, page: ListPage, compact: Compact | None) -> _Kept:
        readings: tuple[Job | FinishedJob, ...] = page.jobs
        logs = page.dead_logs
        if compact is not None:
            readings = tuple(compact(job) or job for job in page.jobs)
            if logs:  # a row kept as its record is not news: its log is never read
                logs = {
                    job.id: logs[job.id]
                    for job, reading in zip(page.jobs, readings, strict=True)
                    if reading is job and job.id in logs
                }
        ids = tuple(job.id for job in page.jobs)
        return cls(
            page.total,
            page.rows,
            page.rejected,
            page.unknown_state,
            page.spelling,
            ids,
            readings,
            logs,
        )


async def list_all(  # noqa: PLR0913 (what is known of the listing, each keyword-only)
    source: JobSource,
    query: Query,
    *,
    page_size: int,
    trust_total: bool,
    size_honoured: bool = False,
    expected_rows: int | None = None,
    compact: Compact | None = None,
) -> Pass:
    """Every job ``query`` selects, read until the rows end, ``source.max_concurrency`` pages
    in flight from the first request. ``expected_rows`` (the previous pass's size) bounds what
    is asked before the rows show more; ``size_honoured`` (the API was seen to answer pages of
    ``page_size`` rows in full) makes a short first page the end, without a probe.

    ``compact`` turns each row the poll will not describe in an event into its compact record
    as its page arrives (``None``: keep the reading), so a listing of a long history never
    holds a full reading per row: what a pod's memory limit has to fit is its peak."""
    listing = Pass()
    filters = query.filters()

    async def fetch(offset: int, size: int) -> _Kept:
        page, request_id = await source.list_page(
            offset=offset,
            size=size,
            queue=query.queue,
            filters=filters,
        )
        listing.requests += 1
        listing.request_id = request_id
        return _Kept.of(page, compact)

    cutoff = _Cutoff(query)
    plan = _Plan(page_size, expected_rows=expected_rows, trust_total=trust_total, cutoff=cutoff)
    pages = await plan.run(fetch, source.max_concurrency)
    first = pages[0]
    if 0 < first.rows < page_size and not size_honoured and not plan.covers(first.rows):
        # End of the data, or the server caps page sizes: one probe tells. The pages asked for
        # beside the first assumed ``page_size``; a capped server is paged one page at a time.
        pages, progress, end = {0: first}, _Progress(), first.rows
        pages[end] = last = progress.check(first, await fetch(end, page_size), end)
        size = end
        end += last.rows
        while last.rows and last.rows >= size:
            if cutoff.passed(last):
                plan.cut_short = True
                break
            if len(pages) >= MAX_PAGES:
                raise MalformedResponse(f"paging did not end after {MAX_PAGES} pages")
            pages[end] = last = progress.check(last, await fetch(end, size), end)
            end += last.rows
    listing.cut_short = plan.cut_short
    return _assemble(listing, query, pages, trust_total=trust_total, page_size=page_size)


class _Plan:
    """Which offsets a pass asks for, as the pages come back.

    Offsets are asked in increasing order by ``workers`` requests in flight, and none beyond the
    first page that was not full (the end of the data), so a pass with nothing known sends at
    most ``workers - 1`` requests more than reading one page after another would. What is known
    narrows that: ``expected_rows`` (a guess: past it only once the page at it came back full),
    and ``total`` (trusted: nothing at or past it; otherwise an upper bound, past which only a
    full page at it leads). A guess that fell short is extended a page, then two, four… so
    the waste of a listing whose size is known stays within one request.
    """

    def __init__(
        self, size: int, *, expected_rows: int | None, trust_total: bool, cutoff: _Cutoff
    ) -> None:
        self.size = size
        self.pages: dict[int, _Kept] = {}
        self.cut_short = False
        self._trust = trust_total
        self._cutoff = cutoff
        # A trusted total shows whether there is more than the guess: no page past it is asked.
        self._guess = (
            math.inf
            if expected_rows is None
            else (math.ceil(expected_rows / size) if trust_total else expected_rows // size + 1)
            * size
        )
        self._bound = math.inf  # from the largest total
        self._largest_total = -1
        self._end = math.inf  # offset of the first page that was not full
        self._next = 0
        self._in_flight = 0
        self._stalls: set[int] = set()
        self._changed = anyio.Event()
        self._ahead = 1  # pages asked past a spent guess
        self._workers = 1

    def covers(self, rows: int) -> bool:
        """A trusted total says ``rows`` rows are all there is."""
        return self._trust and 0 <= self._largest_total <= rows

    async def run(
        self, fetch: Callable[[int, int], Awaitable[_Kept]], workers: int
    ) -> dict[int, _Kept]:
        async def worker() -> None:
            while True:
                offset = self._take()
                if offset is None:
                    if not self._in_flight:
                        return
                    await self._changed.wait()
                    continue
                try:
                    page = await fetch(offset, self.size)
                finally:
                    self._in_flight -= 1
                self._done(offset, page)

        self._workers = max(1, workers)
        await run_all([worker] * self._workers)
        return self.pages

    def _take(self) -> int | None:
        offset = self._next
        if offset and (offset > self._end or offset >= min(self._guess, self._bound)):
            return None
        if len(self.pages) + self._in_flight >= MAX_PAGES:
            raise MalformedResponse(f"paging did not end after {MAX_PAGES} pages")
        self._next += self.size
        self._in_flight += 1
        return offset

    def _done(self, offset: int, page: _Kept) -> None:
        size = self.size
        self.pages[offset] = page
        if page.total is not None and page.total > self._largest_total:
            self._largest_total = total = page.total
            # Trusted, the total is where the rows end; otherwise rows never exceed it, so the
            # page at it is the one that shows the end.
            self._bound = (
                math.ceil(total / size) * size if self._trust else (total // size + 1) * size
            )
        if page.rows < size:
            self._end = min(self._end, offset)
        elif self._cutoff.passed(page):
            self._end = min(self._end, offset)
            self.cut_short = True
        else:
            edge = offset + size
            at_total = self._trust and 0 <= self._largest_total <= edge
            if edge >= self._guess and not at_total:
                # More rows than last time: ask past the guess one page, then two, four… up to
                # the workers, so a listing that grew a little wastes nothing.
                self._guess = edge + size * self._ahead
                self._ahead = min(2 * self._ahead, self._workers)
            if edge >= self._bound and not at_total:
                self._bound = math.inf  # an untrusted total counted fewer than there are
        self._check_progress(offset)
        self._changed.set()
        self._changed = anyio.Event()

    def _check_progress(self, offset: int) -> None:
        """An API that does not advance (``from`` ignored, or pages of nothing but unreadable
        rows) ends the pass with an error. A page stalls when it holds no job the page before it
        did not; churn can move a page's rows by exactly a page's length once, not twice."""
        for earlier in (offset - self.size, offset):
            before, after = self.pages.get(earlier), self.pages.get(earlier + self.size)
            if before is None or after is None:
                continue
            ids = set(after.ids)
            if after.rows and not (ids and not ids <= set(before.ids)):
                self._stalls.add(earlier)
        if len(self._stalls) >= 2:
            raise MalformedResponse(
                "paging does not advance (a page repeats the rows before it, or none can be "
                "read): `from` is ignored or the rows are unreadable"
            )


class _Progress:
    """Tells an API that does not advance from churn, one page after another (see
    :meth:`_Plan._check_progress`)."""

    def __init__(self) -> None:
        self._stalls = 0

    def check(self, previous: _Kept, page: _Kept, offset: int) -> _Kept:
        ids = set(page.ids)
        if not page.rows or (ids and not ids <= set(previous.ids)):
            self._stalls = 0
            return page
        self._stalls += 1
        if self._stalls >= 2:
            raise MalformedResponse(
                f"paging does not advance (offset {offset} repeats the rows before it, or none "
                "can be read): `from` is ignored or the rows are unreadable"
            )
        return page


class _Cutoff:
    """With ``start`` ignored but the order honoured, the rows past ``start`` end the pass."""

    def __init__(self, query: Query) -> None:
        self._since = query.since_ms

    def passed(self, page: _Kept) -> bool:
        if self._since is None:
            return False
        times = [j.create_time for j in page.readings if j.create_time is not None]
        in_order = all(a >= b for a, b in itertools.pairwise(times))
        return bool(times) and in_order and times[-1] < self._since


def _assemble(
    listing: Pass, query: Query, pages: dict[int, _Kept], *, trust_total: bool, page_size: int
) -> Pass:
    rows = read = 0
    foreign = [False, False, False]
    checked = broken = False
    spelling: str | None = None
    queue, state, since = query.queue, query.state, query.since_ms
    jobs, finished = listing.jobs, listing.finished
    for offset in sorted(pages):
        page = pages[offset]
        rows += page.rows
        read += len(page.ids)
        listing.rejected += page.rejected
        listing.unknown_state += page.unknown_state
        spelling = spelling or page.spelling
        times = [j.create_time for j in page.readings if j.create_time is not None]
        if len(set(times)) > 1:
            checked = True
            broken = broken or any(a < b for a, b in itertools.pairwise(times))
        for job_id, job in zip(page.ids, page.readings, strict=True):
            # Outside the (queue, state, start) filter: the API ignored that filter.
            wrong_queue = queue is not None and job.queue != queue
            wrong_state = state is not None and job.state is not state
            too_old = since is not None and job.create_time is not None and job.create_time < since
            if wrong_queue or wrong_state or too_old:
                foreign = [
                    foreign[0] or wrong_queue,
                    foreign[1] or wrong_state,
                    foreign[2] or too_old,
                ]
                continue
            # Seen twice (rows shifted under us): keep the reading from the later page.
            if isinstance(job, FinishedJob):
                finished[job_id] = job
                jobs.pop(job_id, None)
            else:
                jobs[job_id] = job
                finished.pop(job_id, None)
                if job_id in page.logs:
                    listing.logs[job_id] = page.logs[job_id]
    ids = {job_id for page in pages.values() for job_id in page.ids}
    totals = frozenset(page.total for page in pages.values())
    settled = read == len(ids) and not listing.cut_short
    known = [t for t in totals if t is not None]
    listing.complete = (
        read == len(ids)
        and len(known) <= 1
        and (not trust_total or not known or rows >= min(known))
    )
    listing.facts.append(
        PassFacts(
            filtered_state=query.state,
            filtered_queue=query.queue is not None,
            filtered_start=query.since_ms is not None,
            totals=totals,
            rows=rows,
            settled=settled,
            foreign_queue=foreign[0],
            foreign_state=foreign[1],
            foreign_start=foreign[2],
            order_checked=checked,
            order_broken=broken,
            spelling=spelling,
            full_page_size=page_size if any(p.rows >= page_size for p in pages.values()) else 0,
        )
    )
    return listing
