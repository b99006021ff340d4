"""The DLI client: retries and parsing over any :class:`~monitor.dli.transport.Transport`.

:class:`DLIClient` is a thin layer: it sends through its transport (which signs, and holds the
concurrency limit and the rate ceiling), retries what is transient, and parses; it holds no
monitoring rules (paging is :mod:`monitor.poll.paging`'s). A poll reads through
:meth:`DLIClient.for_poll`, a view bound to that poll's retry budget and retry hook.

Retries: throttling (429, or ``APIG.0308`` / ``APIGW.0308`` with any status), 5xx and
``DLI.0999`` (whatever its status), timeouts, connection errors and unreadable 2xx bodies are
retried with exponential backoff and full jitter, honouring ``Retry-After`` (seconds or an HTTP
date) and waiting at least one second after throttling that names no delay, up to
``RetryPolicy.attempts`` per request and a :class:`RetryBudget` per poll. Any other 4xx raises
at once.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import anyio

from monitor.core.jobs import Job
from monitor.dli.errors import APIError, DLIError, MalformedResponse, api_error
from monitor.dli.models import ListPage, parse_job_detail, parse_list_page
from monitor.dli.retry import RetryPolicy, retry_after, skew
from monitor.dli.source import RetryBudget, RetryDetails, RetryHook
from monitor.dli.transport import Request, Transport

__all__ = ["ClientHooks", "DLIClient", "PollClient", "RetryBudget", "RetryPolicy"]

T = TypeVar("T")
#: a 401 with the server's clock this far from ours (seconds) is reported as clock skew
CLOCK_SKEW_WARNING = 60.0


@dataclass(frozen=True, slots=True)
class ClientHooks:
    """Callbacks for metrics: a response or transport failure per request, an unreadable body."""

    on_response: Callable[[str, str], None] = lambda endpoint, code: None
    on_malformed: Callable[[str], None] = lambda endpoint: None
    #: a 401 came with a server Date this far (seconds, ours minus theirs) from our clock
    on_clock_skew: Callable[[float], None] = lambda skew: None
    #: the gateway throttled a request; its message may state the policy it enforces
    on_throttled: Callable[[APIError], None] = lambda error: None


class DLIClient:
    """Speaks ``/v2.0/{project_id}/batches`` through ``transport``."""

    def __init__(
        self,
        transport: Transport,
        project_id: str,
        *,
        retry: RetryPolicy | None = None,
        hooks: ClientHooks | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._transport = transport
        self.project_id = project_id
        self._retry = retry or RetryPolicy()
        self._hooks = hooks or ClientHooks()
        self._rng = rng or random.Random()

    @property
    def max_concurrency(self) -> int:
        return self._transport.max_concurrency

    def for_poll(self, budget: RetryBudget, on_retry: RetryHook | None = None) -> PollClient:
        """The view one poll reads through: every request spends ``budget``, and each retry is
        told to ``on_retry`` before its wait."""
        return PollClient(self, budget, on_retry)

    async def list_page(
        self,
        *,
        offset: int,
        size: int,
        queue: str | None = None,
        filters: Sequence[tuple[str, str]] = (),
    ) -> tuple[ListPage, str | None]:
        """One page of the listing and its request id, on a budget of its own."""
        return await self.for_poll(RetryBudget()).list_page(
            offset=offset, size=size, queue=queue, filters=filters
        )

    async def get_job(self, job_id: str, *, queue: str | None = None) -> Job:
        """The job's detail, on a budget of its own."""
        return await self.for_poll(RetryBudget()).get_job(job_id, queue=queue)

    async def request(
        self,
        endpoint: str,
        request: Request,
        parse: Callable[[bytes, str | None], T],
        budget: RetryBudget,
        on_retry: RetryHook | None,
    ) -> T:
        """One request, retried while its error is transient, its attempts last and ``budget``
        holds; ``parse`` reads the answer's body (with its request id)."""
        attempt = 0
        while True:
            attempt += 1
            budget.sent()
            try:
                body, request_id = await self._send(endpoint, request)
                try:
                    return parse(body, request_id)
                except MalformedResponse:
                    self._hooks.on_malformed(endpoint)
                    raise
            except DLIError as exc:
                if (
                    not exc.retryable
                    or attempt >= self._retry.attempts
                    or (exc.retry_after or 0) > self._retry.max_retry_after
                    or not budget.take()
                ):
                    raise
                throttled = isinstance(exc, APIError) and exc.throttled
                delay = self._retry.delay(attempt, exc.retry_after, self._rng, throttled=throttled)
                if on_retry is not None:
                    on_retry(RetryDetails(exc, attempt, delay))
                await anyio.sleep(delay)

    async def _send(self, endpoint: str, request: Request) -> tuple[bytes, str | None]:
        try:
            response = await self._transport.send(request)
        except DLIError:
            self._hooks.on_response(endpoint, "error")
            raise
        status, headers = response.status, response.headers
        request_id = headers.get("x-request-id")
        self._hooks.on_response(endpoint, str(status))
        if status >= 400:
            wait = retry_after(headers.get("retry-after"))
            error = api_error(status, response.body, request_id, wait)
            skew_s = skew(headers.get("date")) if status == 401 else None
            if skew_s is not None and abs(skew_s) >= CLOCK_SKEW_WARNING:
                # Signatures are only valid for 15 minutes: a wrong clock looks like bad keys.
                error.message += f" (this machine's clock is {skew_s:+.0f} s off the API's)"
                self._hooks.on_clock_skew(skew_s)
            if error.throttled:
                self._hooks.on_throttled(error)
            raise error
        return response.body, request_id


@dataclass(frozen=True, slots=True)
class PollClient:
    """A :class:`DLIClient` bound to one poll's retry budget and retry hook (a
    :class:`~monitor.dli.source.JobSource`)."""

    client: DLIClient
    budget: RetryBudget
    on_retry: RetryHook | None = None

    @property
    def max_concurrency(self) -> int:
        return self.client.max_concurrency

    async def list_page(
        self,
        *,
        offset: int,
        size: int,
        queue: str | None = None,
        filters: Sequence[tuple[str, str]] = (),
    ) -> tuple[ListPage, str | None]:
        """One page of the listing and its request id."""
        query = [("from", str(offset)), ("size", str(size)), *filters]
        if queue:
            query.append(("queue_name", queue))
        client = self.client
        return await client.request(
            "list",
            Request(f"/v2.0/{client.project_id}/batches", tuple(query)),
            lambda body, rid: (
                parse_list_page(body, default_queue=queue or "", request_id=rid),
                rid,
            ),
            self.budget,
            self.on_retry,
        )

    async def get_job(self, job_id: str, *, queue: str | None = None) -> Job:
        """The job's detail; an API error (including "does not exist") is raised."""
        client = self.client
        return await client.request(
            "detail",
            Request(f"/v2.0/{client.project_id}/batches/{job_id}"),
            lambda body, rid: parse_job_detail(body, default_queue=queue or "", request_id=rid),
            self.budget,
            self.on_retry,
        )
