"""The seam between the poll rules and the API: :class:`JobApi`, and :class:`JobSource`, what
one poll reads through.

A poll binds its :class:`RetryBudget` and its :class:`RetryHook` once
(:meth:`JobApi.for_poll`); what it then pages and confirms goes through that view, so no rule
below the poller passes either along. :class:`~monitor.dli.client.DLIClient` is the one
implementation, over any :class:`~monitor.dli.transport.Transport`: over HTTP in the daemon,
over the simulator's in-memory transport in the fast tests, with its real retries either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from monitor.core.jobs import Job
from monitor.dli.errors import DLIError
from monitor.dli.models import ListPage

__all__ = ["JobApi", "JobSource", "RetryBudget", "RetryDetails", "RetryHook"]


@dataclass(frozen=True, slots=True)
class RetryDetails:
    """One retry, as a poll's :class:`RetryHook` is told of it."""

    error: DLIError
    #: the attempt that failed, from 1
    attempt: int
    #: seconds until the next attempt
    delay: float


class RetryHook(Protocol):
    """Told of each retry a poll's requests make, before its wait."""

    def __call__(self, details: RetryDetails, /) -> None: ...


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
    """Where one poll reads jobs from: one list page, or one job's detail. Retries are spent
    from the poll's budget and told to its hook; an error is raised once they are spent."""

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
    ) -> tuple[ListPage, str | None]:
        """One page of ``GET /v2.0/{project_id}/batches`` and its request id; raises
        :class:`~monitor.dli.errors.DLIError` once retries are spent."""
        ...

    async def get_job(self, job_id: str, *, queue: str | None = None) -> Job:
        """One job's detail; raises :class:`~monitor.dli.errors.DLIError` (whether an error
        means the job is gone is decided by :func:`monitor.dli.errors.is_gone`)."""
        ...


class JobApi(Protocol):
    """The API as a poller holds it: a :class:`JobSource` made for each poll."""

    def for_poll(self, budget: RetryBudget, on_retry: RetryHook | None = None) -> JobSource:
        """A view whose requests spend ``budget`` and tell ``on_retry`` of each retry."""
        ...
