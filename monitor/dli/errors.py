"""A small, typed hierarchy of the ways a DLI request can fail.

``DLIError`` is the root. ``APIError`` carries what the service said (HTTP status, ``error_code``,
``error_msg``, ``X-Request-Id``); ``TransportError`` and ``RequestTimeout`` are failures before an
answer arrived; ``MalformedResponse`` is an answer we cannot read. ``retryable`` tells the retry
loop what to do without it knowing the subclasses.

Retryability is decided on the API's code as well as the HTTP status: DLI answers server-side
failures as ``DLI.0999`` whatever the status (often 400), and the API gateway throttles with
``APIG.0308`` / ``APIGW.0308``.
"""

from __future__ import annotations

import orjson

__all__ = [
    "NOT_FOUND_CODES",
    "SERVER_ERROR_CODES",
    "THROTTLE_CODES",
    "APIError",
    "DLIError",
    "MalformedResponse",
    "RequestTimeout",
    "TransportError",
    "UnknownJobState",
    "api_error",
    "is_gone",
]

#: the API gateway's "too many requests", whatever status it comes with
THROTTLE_CODES = frozenset({"APIG.0308", "APIGW.0308"})
#: DLI's "internal service error", which it may send with HTTP 400
SERVER_ERROR_CODES = frozenset({"DLI.0999"})
#: the code table's "the object does not exist" (DLI error code reference)
NOT_FOUND_CODES = frozenset({"DLI.0002"})


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
        self.retryable = self.throttled or status >= 500 or code in SERVER_ERROR_CODES
        super().__init__(str(self))

    @property
    def throttled(self) -> bool:
        """The gateway's rate limit answered, not DLI."""
        return self.status == 429 or self.code in THROTTLE_CODES

    def __str__(self) -> str:
        rid = f" (request id {self.request_id})" if self.request_id else ""
        code = f" {self.code}" if self.code else ""
        return f"HTTP {self.status}{code}: {self.message or 'no message'}{rid}"

    @property
    def error_code(self) -> str:
        return self.code or f"HTTP{self.status}"


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


class UnknownJobState(DLIError):
    """A job's detail names a state we do not know. Not retried: asking again gives the same
    answer until the job's state changes, which a later poll sees."""

    def __init__(self, state: str, request_id: str | None = None) -> None:
        self.state = state
        self.request_id = request_id
        rid = f" (request id {request_id})" if request_id else ""
        super().__init__(f"unknown job state {state!r}{rid}")


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


def api_error(
    status: int, body: bytes, request_id: str | None, retry_after: float | None
) -> APIError:
    """The typed error for an error answer: code, message and request id (``X-Request-Id``,
    else the body's ``request_id``) read from whichever body shape the API used."""
    code = message = ""
    try:
        doc = orjson.loads(body)
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


def is_gone(error: DLIError) -> bool:
    """True only when a detail answer is the code table's "the object does not exist"
    (``DLI.0002``, whatever the HTTP status). A bare 404 may be a wrong route or a proxy, and any
    other code may be transient: those leave the job unconfirmed."""
    return isinstance(error, APIError) and error.code in NOT_FOUND_CODES
