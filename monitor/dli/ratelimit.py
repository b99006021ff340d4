"""The request ceiling shared by every queue's poller, counted as the API gateway counts it.

Huawei gives a quota as "limit: N, time: 1 second": the gateway answers 429 when more than N
requests arrive within any one second. A token bucket lets up to 2N through in one second (a
full bucket, then a second's refill), so this is a sliding window instead: a request may start
only when fewer than N requests started in the last ``window`` seconds. ``window`` is a little
over a second so that jitter between our clock and the moment a request reaches the gateway
cannot put N+1 arrivals into one gateway second.

Waiters are served first come, first served (``anyio.Lock`` is fair), so one busy queue cannot
starve the others; a cancelled waiter gives its place up without taking a slot.

:class:`Ceiling` is what a target's transport waits on: the per-second window, an optional
per-minute one, and any stricter policy a gateway's 429 stated (:func:`parse_quota` reads
"limit:600, time:1 minute" from its message), all satisfied at once.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import anyio

__all__ = ["DEFAULT_WINDOW", "Ceiling", "Quota", "RateLimiter", "parse_quota"]

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

    def wait(self) -> float:
        """Seconds until one more acquisition fits the window (0: now)."""
        if len(self._starts) < self._limit:
            return 0.0
        return max(0.0, self._starts[0] + self._window - self._clock())

    def stamp(self, at: float | None = None) -> None:
        """Count one acquisition as made now (or at ``at``, a time from the same clock)."""
        self._starts.append(self._clock() if at is None else at)

    async def acquire(self) -> None:
        """Wait until a request may be sent, and count it as sent now."""
        async with self._lock:
            while (wait := self.wait()) > 0:  # noqa: ASYNC110 (time frees the slot, not an event)
                await anyio.sleep(wait)
            self.stamp()


@dataclass(frozen=True, slots=True)
class Quota:
    """At most ``limit`` requests in any ``seconds``: a gateway policy, or a configured one."""

    limit: int
    seconds: int

    def __str__(self) -> str:
        unit = {1: "second", 60: "minute", 3600: "hour", 86400: "day"}.get(self.seconds)
        return f"{self.limit} per {unit}" if unit else f"{self.limit} per {self.seconds} s"


#: request start times a :class:`Ceiling` remembers for windows added later
_RECENT = 10_000
_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
#: how APIG words its policy in a 429's message: "… over ratelimit,limit:600,time:1 minute"
_POLICY = re.compile(
    r"limit\s*[:=]\s*(\d+)\s*,\s*time\s*[:=]\s*(\d+)\s*(second|minute|hour|day)s?", re.IGNORECASE
)


def parse_quota(message: str) -> Quota | None:
    """The policy a throttling answer states, or ``None`` if it states none."""
    match = _POLICY.search(message)
    if match is None:
        return None
    limit, count, unit = int(match[1]), int(match[2]), match[3].lower()
    if limit <= 0 or count <= 0:
        return None
    return Quota(limit, count * _UNITS[unit])


class Ceiling:
    """Every window the target's requests must stay within: ``MAX_RPS`` per second, ``MAX_RPM``
    per minute, and any stricter policy a gateway stated since. A request waits for each.

    A window is only ever lowered: what a gateway enforces for one key holds for every process
    using it, and the configured values are the upper bound of what an operator allows."""

    __slots__ = ("_clock", "_limiters", "_lock", "_quotas", "_recent")

    def __init__(
        self,
        max_rps: float,
        max_rpm: int | None = None,
        *,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._clock = clock
        self._lock = anyio.Lock()
        #: when the last requests started, so that a window added later starts from them
        self._recent: deque[float] = deque(maxlen=_RECENT)
        self._quotas: dict[int, Quota] = {}
        self._limiters: dict[int, RateLimiter] = {}
        self._limiters[1] = RateLimiter(max_rps, clock=clock)
        self._quotas[1] = Quota(self._limiters[1].limit, 1)
        if max_rpm is not None:
            self._set(Quota(max_rpm, 60))

    @property
    def quotas(self) -> tuple[Quota, ...]:
        """The effective windows, shortest first."""
        return tuple(self._quotas[s] for s in sorted(self._quotas))

    def lower(self, quota: Quota) -> bool:
        """Apply a gateway's stated policy; True if that lowered the effective ceiling (a policy
        as loose as what is enforced already changes nothing)."""
        current = self._quotas.get(quota.seconds)
        if current is not None and current.limit <= quota.limit:
            return False
        # A looser window of another length may already imply it: 10 per second is 600 a minute.
        for seconds, known in self._quotas.items():
            if (
                seconds <= quota.seconds
                and known.limit * -(-quota.seconds // seconds) <= quota.limit
            ):
                return False
        self._set(quota)
        return True

    def _set(self, quota: Quota) -> None:
        self._quotas[quota.seconds] = quota
        margin = DEFAULT_WINDOW - 1  # the same allowance for our stamp vs. the gateway's arrival
        limiter = RateLimiter(quota.limit, window=quota.seconds + margin, clock=self._clock)
        # The requests already sent in the window count: the gateway has counted them.
        if self._recent:
            since = (self._clock or anyio.current_time)() - quota.seconds - margin
            for at in [t for t in self._recent if t > since][-quota.limit :]:
                limiter.stamp(at)
        self._limiters[quota.seconds] = limiter

    async def acquire(self) -> None:
        """Wait until every window has room at once, and count the request in each. (One window
        at a time would stamp the first too early while waiting for the next, and a stamp
        earlier than the request lets one too many into the gateway's window.)"""
        async with self._lock:
            while (wait := max(limiter.wait() for limiter in self._limiters.values())) > 0:  # noqa: ASYNC110 (time frees the slot)
                await anyio.sleep(wait)
            now = (self._clock or anyio.current_time)()
            self._recent.append(now)
            for limiter in self._limiters.values():
                limiter.stamp(now)
