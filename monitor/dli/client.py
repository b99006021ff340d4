"""The DLI client: one aiohttp session, signing, limits and retries; a :class:`JobSource`.

:class:`DLIClient` is a thin layer: it sends, retries what is transient, and parses; it holds no
monitoring rules (paging is :mod:`monitor.paging`'s). Every request goes through one shared
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

import email.utils
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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
from monitor.dli.source import RetryBudget, RetryCallback

__all__ = ["ClientHooks", "DLIClient", "RetryBudget", "RetryPolicy"]

T = TypeVar("T")
#: Huawei's guidance after throttling is to wait 2-5 s; without Retry-After we wait 1-3 s
THROTTLE_FLOOR = (1.0, 3.0)
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

    def delay(
        self,
        attempt: int,
        retry_after: float | None,
        rng: random.Random,
        *,
        throttled: bool = False,
    ) -> float:
        """Full jitter (uniform in [0, cap]); at least what the server asked for, and after
        throttling that named no delay, at least a jittered second or more."""
        jitter = rng.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))
        if retry_after is None and throttled:
            return max(jitter, rng.uniform(*THROTTLE_FLOOR))
        return max(jitter, retry_after or 0.0)


@dataclass(frozen=True, slots=True)
class ClientHooks:
    """Callbacks for metrics: a response or transport failure per request, an unreadable body."""

    on_response: Callable[[str, str], None] = lambda endpoint, code: None
    on_malformed: Callable[[str], None] = lambda endpoint: None
    #: a 401 came with a server Date this far (seconds, ours minus theirs) from our clock
    on_clock_skew: Callable[[float], None] = lambda skew: None


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


def _error_fields(doc: dict[str, object]) -> tuple[str, str]:
    """(code, message) from an error body in any form huaweicloudsdkcore accepts:
    ``error_code``/``error_msg``, ``errorCode``/``errorMsg``, ``code``/``message``, or one of
    those nested one level down (``{"error": {"code": …, "message": …}}``)."""
    for code_key, msg_key in (("error_code", "error_msg"), ("errorCode", "errorMsg")):
        if code_key in doc or msg_key in doc:
            return str(doc.get(code_key) or ""), str(doc.get(msg_key) or "")
    if isinstance(doc.get("code"), str) or "message" in doc:
        return str(doc.get("code") or ""), str(doc.get("message") or "")
    for value in doc.values():
        if isinstance(value, dict):
            code, message = _error_fields(value)
            if code or message:
                return code, message
    return "", ""


def _api_error(
    status: int, body: bytes, request_id: str | None, retry_after: float | None
) -> APIError:
    code = message = ""
    try:
        doc = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        doc = None
    if isinstance(doc, dict):
        code, message = _error_fields(doc)
        body_rid = doc.get("request_id") or doc.get("requestId")
        if not request_id and isinstance(body_rid, str):
            request_id = body_rid
    if not message and body and doc is None:
        message = body[:200].decode("utf-8", "replace").strip()
    return APIError(status, code, message[:500], request_id, retry_after)


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
