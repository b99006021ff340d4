"""A :class:`~monitor.dli.source.JobSource` whose requests are paced to a rate of their own.

A recount that lists every job of a queue with a long history may take hundreds of requests; at
the target's full ceiling it would hold every other queue's polls back until it ends. Paced to a
share of the ceiling, it takes longer and the other polls go on beside it.
"""

from __future__ import annotations

from collections.abc import Sequence

from monitor.core.jobs import Job
from monitor.dli.models import ListPage
from monitor.dli.ratelimit import RateLimiter
from monitor.dli.source import JobSource

__all__ = ["RECOUNT_SHARE", "PacedSource"]

#: the share of a target's per-second ceiling that a listing recount may use
RECOUNT_SHARE = 0.5


class PacedSource:
    """``source``, with at most ``rps`` list requests starting in any second."""

    def __init__(self, source: JobSource, rps: float) -> None:
        self._source = source
        self._limiter = RateLimiter(rps)

    @property
    def max_concurrency(self) -> int:
        return max(1, min(self._source.max_concurrency, self._limiter.limit))

    async def list_page(
        self,
        *,
        offset: int,
        size: int,
        queue: str | None = None,
        filters: Sequence[tuple[str, str]] = (),
    ) -> tuple[ListPage, str | None]:
        await self._limiter.acquire()
        return await self._source.list_page(offset=offset, size=size, queue=queue, filters=filters)

    async def get_job(self, job_id: str, *, queue: str | None = None) -> Job:
        return await self._source.get_job(job_id, queue=queue)
