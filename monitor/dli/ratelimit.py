"""The request ceiling shared by every queue's poller, counted as the API gateway counts it.

Huawei gives a quota as "limit: N, time: 1 second": the gateway answers 429 when more than N
requests arrive within any one second. A token bucket lets up to 2N through in one second (a
full bucket, then a second's refill), so this is a sliding window instead: a request may start
only when fewer than N requests started in the last ``window`` seconds. ``window`` is a little
over a second so that jitter between our clock and the moment a request reaches the gateway
cannot put N+1 arrivals into one gateway second.

Waiters are served first come, first served (``anyio.Lock`` is fair), so one busy queue cannot
starve the others; a cancelled waiter gives its place up without taking a slot.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import anyio

__all__ = ["DEFAULT_WINDOW", "RateLimiter"]

#: one gateway second plus a margin for the time between our stamp and the request's arrival
DEFAULT_WINDOW = 1.05


class RateLimiter:
    """At most ``limit`` acquisitions in any ``window`` seconds. A fractional limit rounds down;
    one below 1 (0.5 per second) becomes one request per ``1 / limit`` seconds."""

    __slots__ = ("_clock", "_limit", "_lock", "_starts", "_window")

    def __init__(
        self,
        limit: float,
        *,
        window: float = DEFAULT_WINDOW,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if limit <= 0:
            raise ValueError("limit must be positive")
        if window <= 0:
            raise ValueError("window must be positive")
        self._limit = max(1, int(limit))
        self._window = window if limit >= 1 else max(window, 1 / limit)
        self._clock = clock or anyio.current_time
        #: start times of the last ``limit`` acquisitions, oldest first
        self._starts: deque[float] = deque(maxlen=self._limit)
        self._lock = anyio.Lock()

    @property
    def limit(self) -> int:
        return self._limit

    async def acquire(self) -> None:
        """Wait until a request may be sent, and count it as sent now."""
        async with self._lock:
            while len(self._starts) == self._limit:
                wait = self._starts[0] + self._window - self._clock()
                if wait <= 0:
                    break
                await anyio.sleep(wait)
            self._starts.append(self._clock())
