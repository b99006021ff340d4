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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from monitor.core.behaviour import PassFacts
from monitor.core.jobs import Job, JobState
from monitor.dli.errors import MalformedResponse
from monitor.dli.models import ListPage
from monitor.dli.source import JobSource
from monitor.poll.tasks import run_all

__all__ = ["MAX_PAGES", "Pass", "Query", "list_all"]

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

    def merge(self, other: Pass, *, keep_existing: bool = False) -> None:
        """Add another pass (of the same target) to this one; it is complete only if both are.
        With ``keep_existing``, a job already here keeps its reading."""
        if keep_existing:
            for job_id, job in other.jobs.items():
                self.jobs.setdefault(job_id, job)
        else:
            self.jobs.update(other.jobs)
        self.complete = self.complete and other.complete
        self.requests += other.requests
        self.rejected += other.rejected
        self.unknown_state += other.unknown_state
        self.request_id = other.request_id or self.request_id
        self.facts.extend(other.facts)


async def list_all(
    source: JobSource,
    query: Query,
    *,
    page_size: int,
    trust_total: bool,
) -> Pass:
    """Every job ``query`` selects, read page by page until the rows end."""
    listing = Pass()
    filters = query.filters()

    largest_total = 0  # the largest total any page gave (None counts as 0)

    async def fetch(offset: int, size: int) -> ListPage:
        nonlocal largest_total
        page, request_id = await source.list_page(
            offset=offset,
            size=size,
            queue=query.queue,
            filters=filters,
        )
        listing.requests += 1
        listing.request_id = request_id
        largest_total = max(largest_total, page.total or 0)
        return page

    # `last` is the page at the highest offset read so far; paging goes on while it is full.
    pages: dict[int, ListPage] = {0: (last := await fetch(0, page_size))}
    progress = _Progress()
    size = page_size
    end = last.rows
    total = last.total
    covered = trust_total and total is not None and end >= total
    if 0 < end < page_size and not covered:
        # End of the data, or the server caps page sizes: one probe tells.
        pages[end] = last = progress.check(last, await fetch(end, page_size), end)
        if last.rows:
            size = end
        end += last.rows
    if trust_total and total is not None and last.rows == size and end < total:
        offsets = range(end, total, size)
        if len(offsets) > MAX_PAGES:
            raise MalformedResponse(f"total implies more than {MAX_PAGES} pages")
        pages.update(await _concurrently(fetch, offsets, size, source.max_concurrency))
        last = pages[offsets[-1]]
        end = offsets[-1] + last.rows
    cutoff = _Cutoff(query)
    while last.rows >= size:
        if cutoff.passed(last):
            listing.cut_short = True
            break
        if trust_total and total is not None and end >= largest_total:
            break  # a full last page exactly at a trusted total: nothing beyond it
        if len(pages) >= MAX_PAGES:
            raise MalformedResponse(f"paging did not end after {MAX_PAGES} pages")
        pages[end] = last = progress.check(last, await fetch(end, size), end)
        end += last.rows
    return _assemble(listing, query, pages, trust_total=trust_total)


class _Progress:
    """Tells an API that does not advance (``from`` ignored: every offset answers the same
    rows; or pages of nothing but unreadable rows) from churn.

    A page advances when it holds a job the page before it did not. Churn can move every row
    of a page by exactly a page's length once (``size`` jobs created between two requests,
    likelier the smaller the page); twice in a row it does not. Paging on would otherwise spend
    the API quota up to :data:`MAX_PAGES` for nothing."""

    def __init__(self) -> None:
        self._stalls = 0

    def check(self, previous: ListPage, page: ListPage, offset: int) -> ListPage:
        ids = {job.id for job in page.jobs}
        if not page.rows or (ids and not ids <= {job.id for job in previous.jobs}):
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

    def passed(self, page: ListPage) -> bool:
        if self._since is None:
            return False
        times = [j.create_time for j in page.jobs if j.create_time is not None]
        in_order = all(a >= b for a, b in itertools.pairwise(times))
        return bool(times) and in_order and times[-1] < self._since


def _assemble(
    listing: Pass, query: Query, pages: dict[int, ListPage], *, trust_total: bool
) -> Pass:
    rows = read = 0
    foreign = [False, False, False]
    checked = broken = False
    spelling: str | None = None
    queue, state, since, jobs = query.queue, query.state, query.since_ms, listing.jobs
    for offset in sorted(pages):
        page = pages[offset]
        rows += page.rows
        read += len(page.jobs)
        listing.rejected += page.rejected
        listing.unknown_state += page.unknown_state
        spelling = spelling or page.spelling
        times = [j.create_time for j in page.jobs if j.create_time is not None]
        if len(set(times)) > 1:
            checked = True
            broken = broken or any(a < b for a, b in itertools.pairwise(times))
        for job in page.jobs:
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
            jobs[job.id] = job
    ids = {job.id for page in pages.values() for job in page.jobs}
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
        )
    )
    return listing


async def _concurrently(
    fetch: Callable[[int, int], Awaitable[ListPage]],
    offsets: range,
    size: int,
    workers: int,
) -> dict[int, ListPage]:
    pages: dict[int, ListPage] = {}
    todo = iter(offsets)

    async def worker() -> None:
        for offset in todo:
            pages[offset] = await fetch(offset, size)

    await run_all([worker] * max(1, min(workers, len(offsets))))
    return pages
