"""Request authentication: the ``Signer`` seam and Huawei Cloud's ``SDK-HMAC-SHA256`` signing.

The client builds an :class:`OutgoingRequest` (method, host, path, query pairs, body), asks the
signer for the headers to add, and sends the query string :func:`canonical_query` produced, so
what is signed is byte for byte what goes on the wire.

The algorithm follows the API Gateway's AK/SK scheme as ``huaweicloudsdkcore`` implements it:
canonical request = method, canonical URI (each path segment percent-encoded, trailing ``/``),
sorted and encoded query, ``name:value`` lines of the signed headers, the signed header names,
and the hex SHA-256 of the body; string to sign = algorithm, ``X-Sdk-Date``, hex SHA-256 of the
canonical request; signature = hex HMAC-SHA256 of that with the SK.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import quote, unquote

from pydantic import SecretStr

from monitor.dli.credentials import CredentialSource, Keys, StaticKeys, TokenSource

__all__ = [
    "ALGORITHM",
    "AkSkSigner",
    "NoAuth",
    "OutgoingRequest",
    "Signer",
    "TokenAuth",
    "canonical_query",
    "canonical_request",
    "sign_headers",
]

ALGORITHM = "SDK-HMAC-SHA256"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


@dataclass(frozen=True, slots=True)
class OutgoingRequest:
    """What a signer sees of a request. ``query`` is a sequence of (name, value) pairs."""

    method: str
    host: str
    path: str
    query: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)


class Signer(Protocol):
    """Gives the complete headers to send with a request: its own plus any that authenticate it."""

    async def headers(self, request: OutgoingRequest) -> dict[str, str]: ...


class NoAuth:
    """``DLI_MONITOR_AUTH=none``: requests go out unauthenticated (simulators, private gateways)."""

    async def headers(self, request: OutgoingRequest) -> dict[str, str]:
        return dict(request.headers)


@functools.lru_cache(maxsize=4096)
def _encode(value: str) -> str:
    # Cached: the same names, queues, states and offsets are quoted for every request.
    return quote(value, safe="~")


def canonical_query(query: Iterable[tuple[str, str]]) -> str:
    """The sorted, percent-encoded query string: signed, and also what is sent."""
    return "&".join(f"{_encode(k)}={_encode(v)}" for k, v in sorted(query))


def _canonical_uri(path: str) -> str:
    uri = "/".join(_encode(part) for part in unquote(path).split("/"))
    return uri if uri.endswith("/") else uri + "/"


def canonical_request(request: OutgoingRequest, headers: Mapping[str, str]) -> tuple[str, str]:
    """(canonical request, signed header names) for ``request`` carrying ``headers``."""
    lowered = {name.lower(): str(value).strip() for name, value in headers.items()}
    # The gateway's convention: header names with an underscore are never signed.
    signed = sorted(name for name in lowered if "_" not in name)
    canonical_headers = "".join(f"{name}:{lowered[name]}\n" for name in signed)
    body_hash = hashlib.sha256(request.body).hexdigest() if request.body else _EMPTY_SHA256
    text = "\n".join(
        (
            request.method.upper(),
            _canonical_uri(request.path),
            canonical_query(request.query),
            canonical_headers,
            ";".join(signed),
            body_hash,
        )
    )
    return text, ";".join(signed)


def sign_headers(
    request: OutgoingRequest, headers: Mapping[str, str], ak: str, sk: str, sdk_date: str
) -> str:
    """The ``Authorization`` value for ``request`` sent with ``headers`` (which must include
    ``X-Sdk-Date: sdk_date`` and ``Host``)."""
    creq, signed = canonical_request(request, headers)
    to_sign = f"{ALGORITHM}\n{sdk_date}\n{hashlib.sha256(creq.encode()).hexdigest()}"
    signature = hmac.new(sk.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    return f"{ALGORITHM} Access={ak}, SignedHeaders={signed}, Signature={signature}"


class AkSkSigner:
    """Signs every request with keys from a :class:`CredentialSource` (asked per request, so
    rotated or refreshed keys are used as soon as they are there)."""

    __slots__ = ("_clock", "_project_id", "_source")

    def __init__(
        self,
        source: CredentialSource,
        *,
        project_id: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._source = source
        self._project_id = project_id
        self._clock = clock

    @classmethod
    def from_keys(
        cls,
        ak: str,
        sk: SecretStr,
        *,
        project_id: str | None = None,
        security_token: SecretStr | None = None,
        clock: Callable[[], float] = time.time,
    ) -> AkSkSigner:
        """A signer with fixed keys."""
        return cls(StaticKeys(Keys(ak, sk, security_token)), project_id=project_id, clock=clock)

    def __repr__(self) -> str:
        return f"AkSkSigner({self._source!r})"

    async def headers(self, request: OutgoingRequest) -> dict[str, str]:
        keys = await self._source.keys()
        sdk_date = time.strftime(DATE_FORMAT, time.gmtime(self._clock()))
        headers = dict(request.headers)
        headers["Host"] = request.host
        headers["X-Sdk-Date"] = sdk_date
        if self._project_id:
            headers["X-Project-Id"] = self._project_id
        if keys.security_token is not None:
            headers["X-Security-Token"] = keys.security_token.get_secret_value()
        headers["Authorization"] = sign_headers(
            request, headers, keys.ak, keys.sk.get_secret_value(), sdk_date
        )
        return headers


class TokenAuth:
    """``DLI_MONITOR_AUTH=token``: an IAM token in ``X-Auth-Token`` (requests are not signed)."""

    __slots__ = ("_project_id", "_source")

    def __init__(self, source: TokenSource, *, project_id: str | None = None) -> None:
        self._source = source
        self._project_id = project_id

    def __repr__(self) -> str:
        return f"TokenAuth({self._source!r})"

    async def headers(self, request: OutgoingRequest) -> dict[str, str]:
        token = await self._source.token()
        headers = dict(request.headers)
        headers["X-Auth-Token"] = token.get_secret_value()
        if self._project_id:
            headers["X-Project-Id"] = self._project_id
        return headers
