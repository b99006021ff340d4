"""What the API Gateway checks before DLI sees a request: the ``SDK-HMAC-SHA256`` signature."""

from __future__ import annotations

import calendar
import hmac
import re
import time
from collections.abc import Mapping

from monitor.dli.auth import ALGORITHM, DATE_FORMAT, OutgoingRequest, sign_headers

__all__ = ["MAX_SKEW_SECONDS", "verify_signature"]

#: the gateway accepts an X-Sdk-Date at most 15 minutes away from its clock
MAX_SKEW_SECONDS = 15 * 60
_AUTH = re.compile(
    rf"^{ALGORITHM} Access=(?P<ak>[^,]+), "
    r"SignedHeaders=(?P<signed>[^,]+), Signature=(?P<sig>[0-9a-f]+)$"
)


def verify_signature(  # noqa: PLR0911 (one return per way the gateway refuses a signature)
    request: OutgoingRequest,
    headers: Mapping[str, str],
    ak: str,
    sk: str,
    now: float | None = None,
) -> str | None:
    """``None`` if ``headers`` validly sign ``request`` with ``ak``/``sk``, else the reason."""
    auth = headers.get("Authorization", "")
    match = _AUTH.match(auth)
    if not match:
        return (
            "Incorrect IAM authentication information: Authorization header is missing or malformed"
        )
    if match["ak"] != ak:
        return "Incorrect IAM authentication information: ak not found"
    sdk_date = headers.get("X-Sdk-Date", "")
    try:
        signed_at = calendar.timegm(time.strptime(sdk_date, DATE_FORMAT))
    except ValueError:
        return "Incorrect IAM authentication information: X-Sdk-Date is missing or malformed"
    if abs((time.time() if now is None else now) - signed_at) > MAX_SKEW_SECONDS:
        return (
            "Incorrect IAM authentication information: the request has expired "
            "(X-Sdk-Date too far from server time)"
        )
    lowered = {k.lower(): v for k, v in headers.items()}
    signed = match["signed"].split(";")
    if "x-sdk-date" not in signed or any(name not in lowered for name in signed):
        return "Incorrect IAM authentication information: a signed header is missing"
    expected = sign_headers(request, {n: lowered[n] for n in signed}, ak, sk, sdk_date)
    if not hmac.compare_digest(expected, auth):
        return "Incorrect IAM authentication information: verify aksk signature fail"
    return None
