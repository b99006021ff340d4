"""DLIClient edge cases against mocked HTTP (aioresponses): errors, retries, timeouts.

Paging rules are tested against the in-memory source in ``test_paging.py``."""

from __future__ import annotations

import email.utils
import random
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses

from monitor.core.jobs import JobState
from monitor.dli.client import ClientHooks, DLIClient, RetryBudget, RetryPolicy
from monitor.dli.errors import APIError, MalformedResponse, RequestTimeout, TransportError, is_gone
from monitor.dli.ratelimit import Ceiling
from monitor.dli.retry import retry_after, skew
from monitor.dli.transport import AiohttpTransport
from monitor.simulator import World
from tests.fakes import INSTANT, FakeApi

BASE = "http://127.0.0.1:9"
LIST = re.compile(r"^http://127\.0\.0\.1:9/v2\.0/p1/batches\?.*$")
FAST = RetryPolicy(attempts=4, base_delay=0.001, max_delay=0.002)


def rows(*ids: str, state: str = "running") -> list[dict[str, Any]]:
    return [{"id": i, "state": state, "queue": "q"} for i in ids]


def page(total: int, *ids: str) -> dict[str, Any]:
    return {"from": 0, "total": total, "sessions": rows(*ids)}


@pytest.fixture
async def client() -> AsyncIterator[DLIClient]:
    async with aiohttp.ClientSession() as session:
        transport = AiohttpTransport(session, BASE, ceiling=Ceiling(1000), timeout=0.5)
        yield DLIClient(transport, "p1", retry=FAST)


def offsets(mock: aioresponses) -> list[int]:
    return [int(url.query["from"]) for (_, url), calls in mock.requests.items() for _ in calls]


async def test_error_body_becomes_typed_error_with_request_id(client: DLIClient) -> None:
    with aioresponses() as mock:
        mock.get(
            LIST,
            status=400,
            headers={"X-Request-Id": "rid-7"},
            payload={"error_code": "DLI.0001", "error_msg": "Parameter check errors occur."},
        )
        with pytest.raises(APIError) as info:
            await client.list_page(offset=0, size=10, queue="q")
        assert len(offsets(mock)) == 1, "a 4xx is not retried"
    err = info.value
    assert (err.status, err.code, err.request_id) == (400, "DLI.0001", "rid-7")
    assert "Parameter check errors occur." in str(err) and not err.retryable


async def test_5xx_and_429_are_retried_then_succeed(client: DLIClient) -> None:
    with aioresponses() as mock:
        mock.get(LIST, status=503, body=b"upstream down")
        mock.get(
            LIST, status=429, headers={"Retry-After": "0"}, payload={"error_code": "APIGW.0308"}
        )
        mock.get(LIST, payload=page(1, "a"))
        retries: list[tuple[str, int]] = []
        view = client.for_poll(
            RetryBudget(), lambda retry: retries.append((retry.error.error_code, retry.attempt))
        )
        listing, _ = await view.list_page(offset=0, size=10, queue="q")
    assert [j.id for j in listing.jobs] == ["a"]
    assert retries == [("HTTP503", 1), ("APIGW.0308", 2)]


async def test_retry_budget_bounds_a_poll(client: DLIClient) -> None:
    with aioresponses() as mock:
        mock.get(LIST, status=500, repeat=True)
        with pytest.raises(APIError):
            await client.for_poll(RetryBudget(2)).list_page(offset=0, size=10)
        assert len(offsets(mock)) == 3


async def test_retry_after_is_honoured(client: DLIClient) -> None:
    delays: list[float] = []
    with aioresponses() as mock:
        mock.get(LIST, status=429, headers={"Retry-After": "0.05"})
        mock.get(LIST, payload=page(0))
        view = client.for_poll(RetryBudget(), lambda retry: delays.append(retry.delay))
        await view.list_page(offset=0, size=10)
    assert delays and delays[0] >= 0.05


async def test_timeouts_and_connection_errors_are_typed_and_retried(client: DLIClient) -> None:
    with aioresponses() as mock:
        mock.get(LIST, exception=TimeoutError())
        mock.get(LIST, exception=aiohttp.ClientConnectionError("refused"))
        mock.get(LIST, payload=page(0))
        codes: list[str] = []
        view = client.for_poll(RetryBudget(), lambda retry: codes.append(retry.error.error_code))
        await view.list_page(offset=0, size=10)
    assert codes == ["RequestTimeout", "TransportError"]

    with aioresponses() as mock:
        mock.get(LIST, exception=TimeoutError(), repeat=True)
        with pytest.raises(RequestTimeout):
            await client.list_page(offset=0, size=10, queue="q")
    with aioresponses() as mock:
        mock.get(LIST, exception=aiohttp.ClientConnectionError("refused"), repeat=True)
        with pytest.raises(TransportError):
            await client.list_page(offset=0, size=10, queue="q")


async def test_malformed_page_is_retried_then_reported(client: DLIClient) -> None:
    with aioresponses() as mock:
        mock.get(LIST, body=b'{"total": 1, "sess', headers={"X-Request-Id": "torn"})
        mock.get(LIST, payload=page(1, "a"))
        listing, _ = await client.list_page(offset=0, size=10, queue="q")
    assert [j.id for j in listing.jobs] == ["a"]
    with aioresponses() as mock:
        mock.get(LIST, body=b"<html>gateway</html>", repeat=True, headers={"X-Request-Id": "r9"})
        with pytest.raises(MalformedResponse, match="r9"):
            await client.list_page(offset=0, size=10, queue="q")


async def test_detail_errors_are_raised_for_the_poller_to_judge(client: DLIClient) -> None:
    detail = re.compile(r"^http://127\.0\.0\.1:9/v2\.0/p1/batches/[^/?]+$")
    with aioresponses() as mock:
        mock.get(
            detail,
            status=400,
            payload={"error_code": "DLI.0002", "error_msg": "The object does not exist."},
        )
        mock.get(detail, status=404)
        mock.get(detail, payload={"id": "x", "state": "Success", "queue": "q"})
        with pytest.raises(APIError) as documented:
            await client.get_job("x")
        with pytest.raises(APIError) as bare:
            await client.get_job("x")
        found = await client.get_job("x")
    assert is_gone(documented.value) and not is_gone(bare.value)
    assert found.state is JobState.SUCCESS


@pytest.mark.parametrize(
    "body",
    [
        {"error_code": "DLI.0999", "error_msg": "Internal error"},
        {"code": "DLI.0999", "message": "Internal error", "request_id": "body-rid"},
        {"errorCode": "DLI.0999", "errorMsg": "Internal error"},
        {"error": {"code": "DLI.0999", "message": "Internal error"}},
    ],
    ids=["error_code", "code", "camel", "nested"],
)
async def test_every_error_body_form_is_read_and_dli_0999_is_retried_at_400(
    client: DLIClient, body: dict[str, Any]
) -> None:
    errors: list[APIError] = []
    with aioresponses() as mock:
        mock.get(LIST, status=400, payload=body)
        mock.get(LIST, payload=page(0))
        view = client.for_poll(RetryBudget(), lambda retry: errors.append(retry.error))
        await view.list_page(offset=0, size=10)
    assert [(e.status, e.code, e.message) for e in errors] == [(400, "DLI.0999", "Internal error")]
    if "request_id" in body:
        assert errors[0].request_id == "body-rid"


@pytest.mark.parametrize("code", ["APIG.0308", "APIGW.0308"])
async def test_throttling_without_retry_after_waits_at_least_a_second(
    client: DLIClient, code: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:  # the wait is asserted, not served
        slept.append(seconds)

    monkeypatch.setattr("monitor.dli.client.anyio.sleep", sleep)
    delays: list[float] = []
    with aioresponses() as mock:
        # Throttled by code even when the gateway says 400, and with no Retry-After.
        mock.get(LIST, status=400, payload={"error_code": code, "error_msg": "throttled"})
        mock.get(LIST, payload=page(0))
        view = client.for_poll(RetryBudget(), lambda retry: delays.append(retry.delay))
        await view.list_page(offset=0, size=10)
    assert len(delays) == 1 and 1.0 <= delays[0] <= 3.0
    assert slept == delays


def test_retry_after_as_an_http_date_is_honoured() -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    delay = RetryPolicy().delay(1, retry_after(when), random.Random(1))
    assert 28 <= delay <= 31


@pytest.mark.parametrize("attempt", [1, 2, 3, 6])
def test_backoff_is_full_jitter_under_a_doubling_cap(attempt: int) -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=3.0)
    cap = min(3.0, 0.5 * 2 ** (attempt - 1))
    rng = random.Random(attempt)
    delays = [policy.delay(attempt, None, rng) for _ in range(400)]
    assert all(0 <= d <= cap for d in delays)
    assert max(delays) > cap * 0.9 and min(delays) < cap * 0.1, "uniform over [0, cap]"


def test_the_server_s_delay_and_the_throttling_floor_win_over_jitter() -> None:
    policy = RetryPolicy(base_delay=0.01, max_delay=0.02)
    rng = random.Random(5)
    assert all(policy.delay(1, 7.5, rng) == 7.5 for _ in range(50))
    assert all(policy.delay(1, 7.5, rng, throttled=True) == 7.5 for _ in range(50))
    floors = [policy.delay(1, None, rng, throttled=True) for _ in range(200)]
    assert all(1.0 <= d <= 3.0 for d in floors) and max(floors) - min(floors) > 1
    assert all(policy.delay(1, None, rng) <= 0.01 for _ in range(50))


def test_retries_for_an_interval_never_wait_longer_than_it() -> None:
    fast = RetryPolicy.for_interval(0.25)
    assert (fast.base_delay, fast.max_delay) == (0.0125, 0.25)
    slow = RetryPolicy.for_interval(300)
    assert (slow.base_delay, slow.max_delay) == (0.5, 30.0)


async def test_a_detail_is_asked_by_id_and_takes_the_queue_it_was_listed_in(
    client: DLIClient,
) -> None:
    with aioresponses() as mock:
        mock.get(
            "http://127.0.0.1:9/v2.0/p1/batches/job-7",
            payload={"id": "job-7", "state": "running"},
            headers={"X-Request-Id": "rid-1"},
        )
        mock.get(
            "http://127.0.0.1:9/v2.0/p1/batches/job-7",
            status=500,
            payload={"error_code": "DLI.0999", "error_msg": "x"},
            repeat=True,
        )
        job = await client.get_job("job-7", queue="etl")
        assert (job.id, job.queue, job.state) == ("job-7", "etl", JobState.RUNNING)
        retries: list[int] = []
        view = client.for_poll(
            RetryBudget(1, per_request=0), lambda retry: retries.append(retry.attempt)
        )
        with pytest.raises(APIError):
            await view.get_job("job-7")
    assert retries == [1], "the poll's budget and retry callback are the detail's too"


def test_a_poll_budget_counts_what_it_spent() -> None:
    budget = RetryBudget(2, per_request=0)
    assert budget.take() and budget.take() and not budget.take()
    assert budget.spent == 2
    budget.sent()
    assert budget.retries == 0


def test_clock_skew_is_read_from_the_date_header_only_when_there_is_one() -> None:
    assert skew(None) is None and skew("not a date") is None
    assert abs(skew(email.utils.formatdate(time.time() - 120, usegmt=True)) - 120) < 5  # type: ignore[operator]


def test_retry_after_in_seconds_or_as_a_date_never_negative() -> None:
    assert retry_after(None) is None and retry_after("") is None
    assert retry_after("garbage") is None
    assert retry_after("0") == 0.0 and retry_after("0.5") == 0.5
    assert retry_after("-3") == 0.0
    past = email.utils.formatdate(time.time() - 60, usegmt=True)
    assert retry_after(past) == 0.0


async def test_responses_are_counted_by_endpoint_and_a_detail_takes_the_queue_it_is_given() -> None:
    """Over the in-memory API: what dli_monitor_api_requests_total{endpoint,code} is fed, and
    the queue a detail without ``queue``/``cluster_name`` is put in (the one it was listed in)."""
    world = World("p1", ("etl",), seed=1, now_ms=1_700_000_000_000, initial_jobs=3)
    api = FakeApi(world, detail_without_queue=True)
    seen: list[tuple[str, str]] = []
    hooks = ClientHooks(on_response=lambda endpoint, code: seen.append((endpoint, code)))
    client = DLIClient(api, "p1", retry=INSTANT, hooks=hooks)
    page, _ = await client.list_page(offset=0, size=10, queue="etl")
    job_id = page.jobs[0].id
    assert (await client.get_job(job_id)).queue == ""
    assert (await client.get_job(job_id, queue="etl")).queue == "etl"
    with pytest.raises(APIError):
        await client.get_job("not-a-job-id")
    assert seen == [("list", "200"), ("detail", "200"), ("detail", "200"), ("detail", "400")]
