"""When and how long to retry a DLI request: pure rules, no I/O.

Throttling (429, or ``APIG.0308`` / ``APIGW.0308`` with any status), 5xx, ``DLI.0999`` (whatever
its status), timeouts, connection errors and unreadable 2xx bodies are retried (which errors are
retryable is :attr:`~monitor.dli.errors.DLIError.retryable`); the wait is exponential backoff
with full jitter, at least what the server asked for in ``Retry-After`` (seconds or an HTTP
date), and at least a jittered second after throttling that named no delay.
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass

__all__ = ["THROTTLE_FLOOR", "RetryPolicy", "http_date", "retry_after", "skew"]

#: Huawei's guidance after throttling is to wait 2-5 s; without Retry-After we wait 1-3 s
THROTTLE_FLOOR = (1.0, 3.0)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Per-request retry limits; delays grow as ``base_delay * 2**n`` up to ``max_delay``."""

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 30.0
    #: the longest Retry-After we wait inside one poll; a longer one ends the poll
    max_retry_after: float = 60.0
    #: the least wait after throttling that named no delay (jittered within these bounds)
    throttle_floor: tuple[float, float] = THROTTLE_FLOOR

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
            return max(jitter, rng.uniform(*self.throttle_floor))
        return max(jitter, retry_after or 0.0)


def http_date(value: str | None) -> float | None:
    """An HTTP date (``Date``, ``Retry-After``) as Unix time, or ``None``."""
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


def retry_after(value: str | None) -> float | None:
    """Seconds to wait: ``Retry-After`` is either a number of seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = http_date(value)
    return None if when is None else max(0.0, when - time.time())


def skew(server_date: str | None) -> float | None:
    """Our clock minus the server's, from its ``Date`` header."""
    when = http_date(server_date)
    return None if when is None else time.time() - when
