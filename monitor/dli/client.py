"""The DLI client: one aiohttp session, signing, limits and retries; a :class:`JobSource`.

:class:`DLIClient` is a thin layer: it sends, retries what is transient, and parses; it holds no
monitoring rules (paging is :mod:`monitor.poll.paging`'s). Every request goes through one shared
concurrency limit and one shared rate ceiling, so all queues together stay within
``max_concurrency`` requests in flight and ``max_rps`` requests in any second.

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
from urllib.parse import urlsplit

import aiohttp
import anyio
from yarl import URL

from monitor.core.jobs import Job
from monitor.dli.auth import NoAuth, OutgoingRequest, Signer, canonical_query
from monitor.dli.errors import (
    APIError,
    DLIError,
    MalformedResponse,
    RequestTimeout,
    TransportError,
    api_error,
)
from monitor.dli.models import ListPage, parse_job_detail, parse_list_page
from monitor.dli.ratelimit import RateLimiter
from monitor.dli.retry import RetryPolicy, retry_after, skew
from monitor.dli.source import RetryBudget, RetryCallback

__all__ = ["ClientHooks", "DLIClient", "RetryBudget", "RetryPolicy"]

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


class DLIClient:
    """Speaks ``/v2.0/{project_id}/batches`` over one aiohttp session. Create it in a task."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        project_id: str,
        *,
        signer: Signer | None = None,
        max_concurrency: int = 4,
        max_rps: float = 10.0,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        hooks: ClientHooks | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        parts = urlsplit(self._base)
        self._host = parts.netloc
        self._prefix = parts.path
        self.project_id = project_id
        self._signer = signer or NoAuth()
        self.max_concurrency = max_concurrency
        self._slots = anyio.CapacityLimiter(max_concurrency)
        self._rate = RateLimiter(max_rps)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._retry = retry or RetryPolicy()
        self._hooks = hooks or ClientHooks()
        self._rng = rng or random.Random()

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
        """One page of the listing and its request id."""
        query = [("from", str(offset)), ("size", str(size)), *filters]
        if queue:
            query.append(("queue_name", queue))
        return await self._request(
            "list",
            f"/v2.0/{self.project_id}/batches",
            query,
            lambda body, rid: (
                parse_list_page(body, default_queue=queue or "", request_id=rid),
                rid,
            ),
            budget or RetryBudget(),
            on_retry,
        )

    async def get_job(
        self,
        job_id: str,
        *,
        queue: str | None = None,
        budget: RetryBudget | None = None,
        on_retry: RetryCallback | None = None,
    ) -> Job:
        """The job's detail; an API error (including "does not exist") is raised."""
        return await self._request(
            "detail",
            f"/v2.0/{self.project_id}/batches/{job_id}",
            [],
            lambda body, rid: parse_job_detail(body, default_queue=queue or "", request_id=rid),
            budget or RetryBudget(),
            on_retry,
        )

    async def _request(
        self,
        endpoint: str,
        path: str,
        query: list[tuple[str, str]],
        parse: Callable[[bytes, str | None], T],
        budget: RetryBudget,
        on_retry: RetryCallback | None,
    ) -> T:
        attempt = 0
        while True:
            attempt += 1
            budget.sent()
            try:
                body, request_id = await self._send(endpoint, path, query)
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
                    on_retry(exc, attempt, delay)
                await anyio.sleep(delay)

    async def _send(
        self, endpoint: str, path: str, query: list[tuple[str, str]]
    ) -> tuple[bytes, str | None]:
        full_path = self._prefix + path
        request = OutgoingRequest(
            "GET", self._host, full_path, tuple(query), headers={"Content-Type": "application/json"}
        )
        qs = canonical_query(query)
        url = URL(f"{self._base}{path}" + (f"?{qs}" if qs else ""), encoded=True)
        async with self._slots:
            # Signed first: fetching fresh credentials must not sit between the ceiling's count
            # and the request's departure.
            headers = await self._signer.headers(request)
            await self._rate.acquire()
            try:
                async with self._session.get(url, headers=headers, timeout=self._timeout) as resp:
                    body = await resp.read()
                    status = resp.status
                    request_id = resp.headers.get("X-Request-Id")
                    wait = retry_after(resp.headers.get("Retry-After"))
                    server_date = resp.headers.get("Date")
            except TimeoutError:
                self._hooks.on_response(endpoint, "error")
                raise RequestTimeout(f"no response within {self._timeout.total} s") from None
            except aiohttp.ClientError as exc:
                self._hooks.on_response(endpoint, "error")
                raise TransportError(f"{type(exc).__name__}: {exc}") from None
        self._hooks.on_response(endpoint, str(status))
        if status >= 400:
            error = api_error(status, body, request_id, wait)
            skew_s = skew(server_date) if status == 401 else None
            if skew_s is not None and abs(skew_s) >= CLOCK_SKEW_WARNING:
                # Signatures are only valid for 15 minutes: a wrong clock looks like bad keys.
                error.message += f" (this machine's clock is {skew_s:+.0f} s off the API's)"
                self._hooks.on_clock_skew(skew_s)
            raise error
        return body, request_id
