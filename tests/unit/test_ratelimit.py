"""The request ceiling on a fake clock: never more than N starts in any window, exactly."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from monitor.dli.ratelimit import DEFAULT_WINDOW, Ceiling, Quota, RateLimiter, parse_quota
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


# -- the ceiling: several windows at once, lowered by what a gateway states -------------------


@pytest.mark.parametrize(
    ("message", "quota"),
    [
        (
            "The throttling threshold has been reached: policy user over ratelimit,"
            "limit:600,time:1 minute",
            Quota(600, 60),
        ),
        ("policy ip over ratelimit, limit: 5, time: 1 second", Quota(5, 1)),
        ("limit:100000,time:1 day", Quota(100000, 86400)),
        ("LIMIT:20,TIME:2 MINUTES", Quota(20, 120)),
        ("The throttling threshold has been reached", None),
        ("limit:0,time:1 minute", None),
        ("limit:5,time:1 fortnight", None),
    ],
)
def test_the_gateway_policy_is_read_from_its_message(message: str, quota: Quota | None) -> None:
    assert parse_quota(message) == quota


@pytest.mark.timeout(5)
async def test_a_per_minute_window_holds_beside_the_per_second_one(clock: FakeClock) -> None:
    ceiling = Ceiling(4, 6, clock=clock)
    times = []
    for _ in range(8):
        await ceiling.acquire()
        times.append(round(clock() - 1000.0, 6))
    # four in the first second, two more in the next, then the minute is full until the first
    # start is 60 s (and the stamp margin) old
    assert times == [0, 0, 0, 0, 1.05, 1.05, 60.05, 60.05]
    assert ceiling.quotas == (Quota(4, 1), Quota(6, 60))


def test_a_stated_policy_only_ever_lowers_the_ceiling() -> None:
    ceiling = Ceiling(10)
    assert not ceiling.lower(Quota(20, 1))  # looser than configured: never above it
    assert not ceiling.lower(Quota(600, 60))  # 10 a second cannot exceed 600 a minute anyway
    assert ceiling.lower(Quota(300, 60))
    assert not ceiling.lower(Quota(400, 60))
    assert ceiling.lower(Quota(5, 1))
    assert ceiling.quotas == (Quota(5, 1), Quota(300, 60))
    assert str(Quota(300, 60)) == "300 per minute" and str(Quota(7, 90)) == "7 per 90 s"


@pytest.mark.timeout(5)
async def test_a_lowered_window_is_enforced_from_the_next_request(clock: FakeClock) -> None:
    ceiling = Ceiling(100, clock=clock)
    ceiling.lower(Quota(2, 60))
    times = []
    for _ in range(3):
        await ceiling.acquire()
        times.append(round(clock() - 1000.0, 6))
    assert times == [0, 0, 60.05]


@pytest.mark.timeout(5)
async def test_a_window_added_later_counts_the_requests_already_in_it(clock: FakeClock) -> None:
    ceiling = Ceiling(100, clock=clock)
    for _ in range(3):
        await ceiling.acquire()
    clock.advance(10)
    assert ceiling.lower(Quota(4, 60))  # three of its four are taken, by requests 10 s ago
    times = []
    for _ in range(2):
        await ceiling.acquire()
        times.append(round(clock() - 1000.0, 6))
    assert times == [10, 60.05]
