"""The thin layer that sends one request to the DLI API: :class:`Transport`, and its aiohttp
implementation.

A transport sends one ``GET`` below the API's base URL and returns what came back, whatever the
status; it raises only when nothing came back (:class:`~monitor.dli.errors.RequestTimeout`,
:class:`~monitor.dli.errors.TransportError`). Retries, error bodies and parsing are the client's
(:mod:`monitor.dli.client`), so any transport, the in-memory one of the simulator included, runs
under the real client's rules, as httpx's ``MockTransport`` does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

import aiohttp
import anyio
from yarl import URL

from monitor.dli.auth import NoAuth, OutgoingRequest, Signer, canonical_query
from monitor.dli.errors import RequestTimeout, TransportError
from monitor.dli.ratelimit import Ceiling

__all__ = ["AiohttpTransport", "Request", "Response", "Transport"]


@dataclass(frozen=True, slots=True)
class Request:
    """One ``GET`` below the API's base URL: ``/v2.0/{project_id}/batches`` and its query."""

    path: str
    query: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Response:
    """What came back: the status, the headers the client reads (names in lower case), the
    body as sent."""

    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


class Transport(Protocol):
    """Sends one request; raises only when no response came."""

    @property
    def max_concurrency(self) -> int:
        """Requests worth having in flight at once."""
        ...

    async def send(self, request: Request) -> Response: ...


#: the response headers a client reads
_READ = ("x-request-id", "retry-after", "date")


class AiohttpTransport:
    """Over one aiohttp session: every request signed, through one concurrency limit and one
    rate ceiling shared by all the client's callers, so all queues together stay within
    ``max_concurrency`` requests in flight and within ``ceiling`` (10 a second by default)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        *,
        signer: Signer | None = None,
        max_concurrency: int = 4,
        ceiling: Ceiling | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        parts = urlsplit(self._base)
        self._host = parts.netloc
        self._prefix = parts.path
        self._signer = signer or NoAuth()
        self.max_concurrency = max_concurrency
        self._slots = anyio.CapacityLimiter(max_concurrency)
        self._rate = ceiling or Ceiling(10)
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def send(self, request: Request) -> Response:
        signed = OutgoingRequest(
            "GET",
            self._host,
            self._prefix + request.path,
            request.query,
            headers={"Content-Type": "application/json"},
        )
        qs = canonical_query(request.query)
        url = URL(f"{self._base}{request.path}" + (f"?{qs}" if qs else ""), encoded=True)
        async with self._slots:
            # Signed first: fetching fresh credentials must not sit between the ceiling's count
            # and the request's departure.
            headers = await self._signer.headers(signed)
            await self._rate.acquire()
            try:
                async with self._session.get(url, headers=headers, timeout=self._timeout) as resp:
                    body = await resp.read()
                    read = {name: resp.headers[name] for name in _READ if name in resp.headers}
                    return Response(resp.status, body, read)
            except TimeoutError:
                raise RequestTimeout(f"no response within {self._timeout.total} s") from None
            except aiohttp.ClientError as exc:
                raise TransportError(f"{type(exc).__name__}: {exc}") from None
