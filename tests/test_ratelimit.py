"""The request ceiling, measured with the limiter's own clock: never more than N in a window."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from monitor.dli.ratelimit import RateLimiter
from tests.test_limits import busiest_second


async def test_no_window_holds_more_than_the_limit_even_from_a_standing_start() -> None:
    limiter = RateLimiter(5, window=0.1)
    starts: list[float] = []
    with anyio.fail_after(5):
        for _ in range(23):
            await limiter.acquire()
            starts.append(anyio.current_time())
    # At most 5 in any 0.1 s: scaled to the one-second helper, at most 5 per "second".
    assert busiest_second([t * 10 for t in starts]) <= 5
    assert starts[4] - starts[0] < 0.05, "the first five go at once: a ceiling, not a pacer"


async def test_waiters_are_served_in_arrival_order() -> None:
    limiter = RateLimiter(1, window=0.02)
    order: list[int] = []

    async def take(n: int) -> None:
        await limiter.acquire()
        order.append(n)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for n in range(6):
                tg.start_soon(take, n)
                await anyio.lowlevel.checkpoint()  # queue in a known order
    assert order == list(range(6))


def test_a_fractional_limit_spaces_requests_by_its_inverse() -> None:
    assert RateLimiter(0.5).limit == 1
    with pytest.raises(ValueError, match="positive"):
        RateLimiter(0)
