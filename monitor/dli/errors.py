"""A small, typed hierarchy of the ways a DLI request can fail.

``DLIError`` is the root. ``APIError`` carries what the service said (HTTP status, ``error_code``,
``error_msg``, ``X-Request-Id``); ``TransportError`` and ``RequestTimeout`` are failures before an
answer arrived; ``MalformedResponse`` is an answer we cannot read. ``retryable`` tells the retry
loop what to do without it knowing the subclasses.
"""

from __future__ import annotations

__all__ = [
    "APIError",
    "DLIError",
    "MalformedResponse",
    "RequestTimeout",
    "TransportError",
]


class DLIError(Exception):
    """Base class: a request to DLI did not produce a usable answer."""

    retryable: bool = False
    #: seconds the server asked us to wait (``Retry-After``), if it said so
    retry_after: float | None = None

    @property
    def error_code(self) -> str:
        """The API's error code, or a short name of the failure kind for local failures."""
        return type(self).__name__


class APIError(DLIError):
    """The service answered with an error status."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.retry_after = retry_after
        # Throttling and server-side failures are transient; any other 4xx means our request
        # (its configuration) is wrong and repeating it cannot help.
        self.retryable = status == 429 or status >= 500
        super().__init__(str(self))

    def __str__(self) -> str:
        rid = f" (request id {self.request_id})" if self.request_id else ""
        code = f" {self.code}" if self.code else ""
        return f"HTTP {self.status}{code}: {self.message or 'no message'}{rid}"

    @property
    def error_code(self) -> str:
        return self.code or f"HTTP{self.status}"

    @property
    def not_found(self) -> bool:
        """True when the service says the object does not exist (404, or 400 ``DLI.0002``)."""
        return self.status == 404 or self.code == "DLI.0002"


class TransportError(DLIError):
    """The connection failed before a response was read (refused, reset, DNS, TLS)."""

    retryable = True


class RequestTimeout(DLIError):
    """No complete response within the request timeout."""

    retryable = True


class MalformedResponse(DLIError):
    """A 2xx response whose body is not what the API documents (bad JSON, wrong types)."""

    # A torn or garbled page is usually transient (a proxy, a half-written cache entry).
    retryable = True

    def __init__(self, message: str, request_id: str | None = None) -> None:
        self.request_id = request_id
        super().__init__(message + (f" (request id {request_id})" if request_id else ""))
