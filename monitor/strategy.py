"""How one poll gathers what it observes: a full listing, or only what can have changed.

:class:`FullListing` pages through every job of the queue; its cost grows with the history the
API keeps. :class:`IncrementalListing` lists the active states with the API's ``state`` filter,
the jobs created since the newest one already seen (``order=CREATE_TIME_DESC`` + ``start``), and
counts the terminal states from the ``total`` of one-row requests, so its cost grows with the
active and recently created jobs only. Active jobs that left the active listings are confirmed
with detail requests by the poller, as for a full listing, so both see every change.

Both give a :class:`Gathered`: the jobs to diff, whether the listing is complete, and (for the
incremental strategy) the per-state totals the snapshot does not hold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from monitor.dli.client import DLIClient, Listing, RetryBudget
from monitor.dli.errors import DLIError
from monitor.dli.models import ACTIVE_STATES, TERMINAL_STATES, JobState
from monitor.tasks import run_all

__all__ = ["FiltersIgnored", "FullListing", "Gathered", "IncrementalListing"]

RetryCallback = Callable[[DLIError, int, float], None]
#: jobs created this long before the newest one seen are listed again: creation and visibility
#: in the listing are not strictly ordered (a job may show up a moment after a newer one)
WATERMARK_MARGIN_MS = 60 * 1000


class FiltersIgnored(Exception):
    """The API answered a ``state``-filtered listing with rows in other states."""


@dataclass(slots=True)
class Gathered:
    """What one poll observed: its listing (several passes merged, for incremental polls) and
    what the listing alone does not say."""

    listing: Listing = field(default_factory=Listing)
    #: states counted by the API rather than from the snapshot
    totals: dict[JobState, int] = field(default_factory=dict)
    #: how many requests a full listing would take (known from any listing's ``total``)
    full_listing_requests: int = 0
    #: finished jobs created before this are history, not listed any more (incremental only)
    history_before_ms: int | None = None


class FullListing:
    """Every job of the queue, every poll."""

    name = "full"

    async def gather(
        self,
        client: DLIClient,
        queue: str | None,
        *,
        page_size: int,
        budget: RetryBudget,
        on_retry: RetryCallback,
    ) -> Gathered:
        listing = await client.list_jobs(
            queue, page_size=page_size, budget=budget, on_retry=on_retry
        )
        return Gathered(listing, full_listing_requests=listing.requests)


class IncrementalListing:
    """Active jobs, new jobs, and terminal counts: the cost of what can have changed."""

    name = "incremental"

    def __init__(self, watermark_ms: int | None = None) -> None:
        #: newest create_time seen; jobs created since (minus a margin) are listed each poll
        self.watermark_ms = watermark_ms

    async def gather(
        self,
        client: DLIClient,
        queue: str | None,
        *,
        page_size: int,
        budget: RetryBudget,
        on_retry: RetryCallback,
    ) -> Gathered:
        active: dict[JobState, Listing] = {}
        counted: dict[JobState, int] = {}
        recent: list[Listing] = []

        async def list_state(state: JobState) -> None:
            active[state] = await client.list_jobs(
                queue,
                page_size=page_size,
                filters=[("state", state.value)],
                budget=budget,
                on_retry=on_retry,
            )

        async def count_state(state: JobState) -> None:
            page, _ = await client.list_page(
                offset=0,
                size=1,
                queue=queue,
                filters=[("state", state.value)],
                budget=budget,
                on_retry=on_retry,
            )
            if any(job.state is not state for job in page.jobs):
                raise FiltersIgnored(f"a state={state.value} listing returned other states")
            counted[state] = page.total

        async def list_recent() -> None:
            since = 0 if self.watermark_ms is None else self.watermark_ms - WATERMARK_MARGIN_MS
            recent.append(
                await client.list_jobs(
                    queue,
                    page_size=page_size,
                    filters=[("order", "CREATE_TIME_DESC"), ("start", str(max(0, since)))],
                    budget=budget,
                    on_retry=on_retry,
                )
            )

        await run_all(
            [partial(list_state, s) for s in sorted(ACTIVE_STATES)]
            + [partial(count_state, s) for s in sorted(TERMINAL_STATES)]
            + [list_recent]
        )

        listing = Listing()
        for state, passed in active.items():
            if any(job.state is not state for job in passed.jobs.values()):
                raise FiltersIgnored(f"a state={state.value} listing returned other states")
            listing.merge(passed)
        listing.requests += len(counted)
        # New jobs may be in any state; an active one is in both listings, the same reading or a
        # later one, and either is a real state the job was in.
        listing.merge(recent[0], keep_existing=True)
        everything = sum(counted.values()) + sum(len(v.jobs) for v in active.values())
        gathered = Gathered(
            listing, totals=counted, full_listing_requests=max(1, -(-everything // page_size))
        )
        created = [j.create_time for j in listing.jobs.values() if j.create_time is not None]
        if created:
            self.watermark_ms = max(max(created), self.watermark_ms or 0)
        if self.watermark_ms is not None:
            gathered.history_before_ms = self.watermark_ms - WATERMARK_MARGIN_MS
        return gathered
