"""The DLI client: one aiohttp session, signing, limits, retries and paging.

:class:`DLIClient` is a thin layer: it sends, retries what is transient, and parses; it holds no
monitoring rules. Every request goes through one shared concurrency limit and one shared rate
limit, so all queues together stay within ``max_concurrency`` and ``max_rps``.

Retries: 429, 5xx, timeouts, connection errors and unreadable 2xx bodies are retried with
exponential backoff and full jitter, honouring ``Retry-After``, up to ``RetryPolicy.attempts``
per request and a :class:`RetryBudget` per poll. Any other 4xx raises at once.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import urlsplit

import aiohttp
import anyio
import orjson
from yarl import URL

from monitor.dli.auth import NoAuth, OutgoingRequest, Signer, canonical_query
from monitor.dli.errors import APIError, DLIError, MalformedResponse, RequestTimeout, TransportError
from monitor.dli.models import Job, ListPage, parse_job_detail, parse_list_page
from monitor.dli.ratelimit import RateLimiter
from monitor.tasks import run_all

__all__ = ["ClientHooks", "DLIClient", "Listing", "RetryBudget", "RetryPolicy"]

T = TypeVar("T")
RetryCallback = Callable[[DLIError, int, float], None]
#: a server answering full pages forever must not keep us paging forever
MAX_PAGES = 10_000
#: a 401 with the server's clock this far from ours (seconds) is reported as clock skew
CLOCK_SKEW_WARNING = 60.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Per-request retry limits; delays grow as ``base_delay * 2**n`` up to ``max_delay``."""

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 30.0
    #: the longest Retry-After we wait inside one poll; a longer one ends the poll
    max_retry_after: float = 60.0

    @classmethod
    def for_interval(cls, poll_interval: float) -> RetryPolicy:
        """Retries that fit a poll: never wait longer than one interval between two attempts,
        so a flaky API delays a poll by at most a few intervals (0.5 s … 30 s at 30 s polls)."""
        return cls(base_delay=min(0.5, poll_interval / 20), max_delay=min(30.0, poll_interval))

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Full jitter (uniform in [0, cap]); at least what the server asked for."""
        jitter = rng.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))
        return max(jitter, retry_after or 0.0)


@dataclass(slots=True)
class RetryBudget:
    """Retries one poll may still spend across all its requests."""

    retries: int = 8

    def take(self) -> bool:
        if self.retries <= 0:
            return False
        self.retries -= 1
        return True


@dataclass(frozen=True, slots=True)
class ClientHooks:
    """Callbacks for metrics: a response or transport failure per request, an unreadable body."""

    on_response: Callable[[str, str], None] = lambda endpoint, code: None
    on_malformed: Callable[[str], None] = lambda endpoint: None
    #: a 401 came with a server Date this far (seconds, ours minus theirs) from our clock
    on_clock_skew: Callable[[float], None] = lambda skew: None


@dataclass(slots=True)
class Listing:
    """A full paging pass, deduplicated by job id.

    ``complete`` is true when ``total`` stayed the same on every page and the rows read cover it,
    i.e. no job can have slipped between pages.
    """

    jobs: dict[str, Job] = field(default_factory=dict)
    complete: bool = True
    requests: int = 0
    rejected: int = 0
    unknown_state: int = 0
    request_id: str | None = None

    def merge(self, other: Listing, *, keep_existing: bool = False) -> None:
        """Add another pass (of the same queue) to this one; it is complete only if both are.
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


def _http_date(value: str | None) -> float | None:
    """An HTTP date (``Date``, ``Retry-After``) as Unix time, or ``None``."""
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait: ``Retry-After`` is either a number of seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = _http_date(value)
    return None if when is None else max(0.0, when - time.time())


def _skew(server_date: str | None) -> float | None:
    """Our clock minus the server's, from its ``Date`` header."""
    when = _http_date(server_date)
    return None if when is None else time.time() - when


def _api_error(
    status: int, body: bytes, request_id: str | None, retry_after: float | None
) -> APIError:
    code = message = ""
    try:
        doc = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        doc = None
    if isinstance(doc, dict):
        code = str(doc.get("error_code") or doc.get("code") or "")
        message = str(doc.get("error_msg") or doc.get("message") or "")
    if not message and body and doc is None:
        message = body[:200].decode("utf-8", "replace").strip()
    return APIError(status, code, message, request_id, retry_after)


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
        self._max_concurrency = max_concurrency
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

    async def list_jobs(
        self,
        queue: str | None,
        *,
        page_size: int = 100,
        filters: Sequence[tuple[str, str]] = (),
        budget: RetryBudget | None = None,
        on_retry: RetryCallback | None = None,
    ) -> Listing:
        """Page through every job of ``queue`` (all of the project's if ``None``).

        The first page gives ``total``; the other pages are then fetched concurrently by at most
        ``max_concurrency`` workers (so other queues' requests interleave fairly), and pages are
        read on from there if ``total`` grew meanwhile.
        """
        budget = budget or RetryBudget()
        listing = Listing()
        totals: set[int] = set()

        async def fetch(offset: int, size: int) -> ListPage:
            page, request_id = await self.list_page(
                offset=offset,
                size=size,
                queue=queue,
                filters=filters,
                budget=budget,
                on_retry=on_retry,
            )
            listing.requests += 1
            listing.request_id = request_id
            totals.add(page.total)
            return page

        first = await fetch(0, page_size)
        pages = {0: first}
        size = page_size
        if 0 < first.rows < page_size and first.rows < first.total:
            size = first.rows  # the server caps page sizes: use its size from now on
        end = first.rows
        if first.rows and end < first.total:
            offsets = range(end, first.total, size)
            pages.update(await self._fetch_concurrently(fetch, offsets, size))
            end = offsets[-1] + pages[offsets[-1]].rows
            # Rows inserted at the head while we paged pushed older rows further down: read on.
            while pages[max(pages)].rows == size and end < max(totals):
                if len(pages) >= MAX_PAGES:
                    raise MalformedResponse(f"paging did not end after {MAX_PAGES} pages")
                pages[end] = await fetch(end, size)
                end += pages[end].rows
        rows = read = 0
        for offset in sorted(pages):
            page = pages[offset]
            rows += page.rows
            read += len(page.jobs)
            listing.rejected += page.rejected
            listing.unknown_state += page.unknown_state
            for job in page.jobs:
                # Seen twice (rows shifted under us): keep the reading from the later page.
                listing.jobs[job.id] = job
        # Rows shifted under us if total moved, or if a job was read twice (an insert and a
        # delete can leave total unchanged): then a job may have slipped between two pages.
        listing.complete = len(totals) == 1 and rows >= min(totals) and read == len(listing.jobs)
        return listing

    async def _fetch_concurrently(
        self,
        fetch: Callable[[int, int], Awaitable[ListPage]],
        offsets: range,
        size: int,
    ) -> dict[int, ListPage]:
        if len(offsets) > MAX_PAGES:
            raise MalformedResponse(f"total implies more than {MAX_PAGES} pages")
        pages: dict[int, ListPage] = {}
        todo = iter(offsets)

        async def worker() -> None:
            for offset in todo:
                pages[offset] = await fetch(offset, size)

        await run_all([worker] * min(self._max_concurrency, len(offsets)))
        return pages

    async def get_job(
        self,
        job_id: str,
        *,
        queue: str | None = None,
        budget: RetryBudget | None = None,
        on_retry: RetryCallback | None = None,
    ) -> Job | None:
        """The job's detail, or ``None`` if the API says it does not exist."""
        try:
            return await self._request(
                "detail",
                f"/v2.0/{self.project_id}/batches/{job_id}",
                [],
                lambda body, rid: parse_job_detail(body, default_queue=queue or "", request_id=rid),
                budget or RetryBudget(),
                on_retry,
            )
        except APIError as exc:
            if exc.not_found:
                return None
            raise

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
                delay = self._retry.delay(attempt, exc.retry_after, self._rng)
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
            await self._rate.acquire()
            headers = await self._signer.headers(request)
            try:
                async with self._session.get(url, headers=headers, timeout=self._timeout) as resp:
                    body = await resp.read()
                    status = resp.status
                    request_id = resp.headers.get("X-Request-Id")
                    retry_after = _retry_after(resp.headers.get("Retry-After"))
                    server_date = resp.headers.get("Date")
            except TimeoutError:
                self._hooks.on_response(endpoint, "error")
                raise RequestTimeout(f"no response within {self._timeout.total} s") from None
            except aiohttp.ClientError as exc:
                self._hooks.on_response(endpoint, "error")
                raise TransportError(f"{type(exc).__name__}: {exc}") from None
        self._hooks.on_response(endpoint, str(status))
        if status >= 400:
            error = _api_error(status, body, request_id, retry_after)
            skew = _skew(server_date) if status == 401 else None
            if skew is not None and abs(skew) >= CLOCK_SKEW_WARNING:
                # Signatures are only valid for 15 minutes: a wrong clock looks like bad keys.
                error.message += f" (this machine's clock is {skew:+.0f} s off the API's)"
                self._hooks.on_clock_skew(skew)
            raise error
        return body, request_id
