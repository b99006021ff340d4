"""The seam between the poll rules and the API: :class:`JobSource`.

:class:`~monitor.dli.client.DLIClient` satisfies it over HTTP; tests satisfy it with an
in-memory fake, so paging, strategies and the poller are tested in milliseconds without a server.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from monitor.core.jobs import Job
from monitor.dli.errors import DLIError
from monitor.dli.models import ListPage

__all__ = ["JobSource", "RetryBudget", "RetryCallback"]

#: told of each retry: the error, the attempt that failed (1-based), the delay before the next
RetryCallback = Callable[[DLIError, int, float], None]


@dataclass(slots=True)
class RetryBudget:
    """Retries one poll may still spend across all its requests: ``retries`` to start with, and
    ``per_request`` more for each request sent, so a poll that pages through fifty pages can
    ride out as many transient errors per page as a poll of five. Bounded all the same: a poll
    sends at most a bounded number of requests (``MAX_PAGES`` per pass)."""

    retries: float = 8
    per_request: float = 0.25
    #: retries spent so far
    spent: int = 0

    def sent(self) -> None:
        """A request (first attempt or retry) went out."""
        self.retries += self.per_request

    def take(self) -> bool:
        if self.retries < 1:
            return False
        self.retries -= 1
        self.spent += 1
        return True


class JobSource(Protocol):
    """Where jobs are read from: one list page, or one job's detail."""

    @property
    def max_concurrency(self) -> int:
        """Requests worth having in flight at once (the client's shared limit)."""
        ...

    async def list_page(
        self,
        *,
        offset: int,
        size: int,
        queue: str | None = None,
        filters: Sequence[tuple[str, str]] = (),
        budget: RetryBudget | None = None,
        on_retry: RetryCallback | None = None,
    ) -> tuple[ListPage, str | None]:
        """One page of ``GET /v2.0/{project_id}/batches`` and its request id; raises
        :class:`~monitor.dli.errors.DLIError` once retries are spent."""
        ...

    async def get_job(
        self,
        job_id: str,
        *,
        queue: str | None = None,
        budget: RetryBudget | None = None,
        on_retry: RetryCallback | None = None,
    ) -> Job:
        """One job's detail; raises :class:`~monitor.dli.errors.DLIError` (whether an error
        means the job is gone is decided by :func:`monitor.core.behaviour.is_gone`)."""
        ...
