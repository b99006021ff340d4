"""A token-bucket rate limit shared by every queue's poller.

Waiters are served first come, first served (``anyio.Lock`` is fair), so one busy queue cannot
starve the others; a cancelled waiter gives its place up without consuming a token.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio

__all__ = ["RateLimiter"]


class RateLimiter:
    """At most ``rate`` acquisitions per second on average, bursts of up to ``burst``."""

    __slots__ = ("_burst", "_clock", "_lock", "_rate", "_stamp", "_tokens")

    def __init__(
        self, rate: float, burst: float | None = None, clock: Callable[[], float] | None = None
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._rate = rate
        # A burst of one second's worth (at least one request) keeps the start-up sweep quick.
        self._burst = max(1.0, burst if burst is not None else rate)
        self._clock = clock or anyio.current_time
        self._tokens = self._burst
        self._stamp: float | None = None
        self._lock = anyio.Lock()

    @property
    def rate(self) -> float:
        return self._rate

    async def acquire(self) -> None:
        """Wait until a request may be sent."""
        async with self._lock:
            while True:
                now = self._clock()
                if self._stamp is not None:
                    self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
                self._stamp = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await anyio.sleep((1 - self._tokens) / self._rate)
