"""The request ceiling on a fake clock: never more than N starts in any window, exactly."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from monitor.dli.ratelimit import DEFAULT_WINDOW, RateLimiter
from tests.fakes import FakeClock


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """Time that moves only when the limiter sleeps: its waits are exact and cost nothing."""
    fake = FakeClock(1000.0)

    async def sleep(seconds: float) -> None:
        fake.advance(seconds)
        await anyio.lowlevel.checkpoint()

    monkeypatch.setattr("monitor.dli.ratelimit.anyio.sleep", sleep)
    return fake


async def starts(limiter: RateLimiter, clock: FakeClock, n: int) -> list[float]:
    times = []
    for _ in range(n):
        await limiter.acquire()
        times.append(round(clock() - 1000.0, 6))
    return times


@pytest.mark.timeout(5)
async def test_n_go_at_once_then_each_waits_for_the_oldest_to_leave_the_window(
    clock: FakeClock,
) -> None:
    limiter = RateLimiter(3, clock=clock)
    assert await starts(limiter, clock, 7) == [0, 0, 0, 1.05, 1.05, 1.05, 2.1]
    assert limiter.limit == 3 and DEFAULT_WINDOW == 1.05


@pytest.mark.timeout(5)
async def test_a_slot_frees_exactly_when_the_window_has_passed(clock: FakeClock) -> None:
    limiter = RateLimiter(2, window=0.5, clock=clock)
    await starts(limiter, clock, 2)
    clock.advance(0.5)  # the first start is exactly one window old: its slot is free
    assert await starts(limiter, clock, 1) == [0.5]
    clock.advance(0.2)
    assert await starts(limiter, clock, 2) == [0.7, 1.0]


@pytest.mark.timeout(5)
async def test_a_fractional_limit_becomes_one_request_per_inverse_second(clock: FakeClock) -> None:
    assert await starts(RateLimiter(0.5, window=0.1, clock=clock), clock, 3) == [0, 2, 4]
    assert RateLimiter(2.9).limit == 2


@pytest.mark.timeout(5)
@pytest.mark.parametrize(
    ("limit", "expected"),
    [(1, [0, 0.1, 0.2]), (1.5, [0, 0.1, 0.2]), (3, [0, 0, 0, 0.1])],
)
async def test_a_limit_of_one_or_more_keeps_the_window_it_was_given(
    clock: FakeClock, limit: float, expected: list[float]
) -> None:
    limiter = RateLimiter(limit, window=0.1, clock=clock)
    assert await starts(limiter, clock, len(expected)) == expected


async def test_waiters_are_served_in_arrival_order(clock: FakeClock) -> None:
    limiter = RateLimiter(1, window=0.02, clock=clock)
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


@pytest.mark.parametrize(
    ("limit", "window", "why"),
    [(0, 1.0, "limit must be positive"), (-1, 1.0, "limit must be positive"),
     (5, 0, "window must be positive"), (5, -1, "window must be positive")],
)  # fmt: skip
def test_a_limit_or_window_that_is_not_positive_is_refused(
    limit: float, window: float, why: str
) -> None:
    with pytest.raises(ValueError, match=f"^{why}$"):
        RateLimiter(limit, window=window)
