"""DLIClient edge cases against mocked HTTP (aioresponses): paging, errors, retries, timeouts."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from aioresponses import CallbackResult, aioresponses

from monitor.dli.client import DLIClient, RetryBudget, RetryPolicy
from monitor.dli.errors import APIError, MalformedResponse, RequestTimeout, TransportError

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
        yield DLIClient(session, BASE, "p1", max_rps=1000, retry=FAST, timeout=0.5)


def offsets(mock: aioresponses) -> list[int]:
    return [int(url.query["from"]) for (_, url), calls in mock.requests.items() for _ in calls]


async def test_paging_stops_exactly_at_total(client: DLIClient) -> None:
    with aioresponses() as mock:
        mock.get(LIST, payload=page(4, "a", "b"))
        mock.get(LIST, payload=page(4, "c", "d"))
        listing = await client.list_jobs("q", page_size=2)
    assert list(listing.jobs) == ["a", "b", "c", "d"]
    assert listing.requests == 2 and listing.complete


async def test_short_last_page_ends_the_pass(client: DLIClient) -> None:
    with aioresponses() as mock:
        mock.get(LIST, payload=page(5, "a", "b"))
        mock.get(LIST, payload=page(5, "c", "d"))
        mock.get(LIST, payload=page(5, "e"))
        listing = await client.list_jobs("q", page_size=2)
    assert len(listing.jobs) == 5 and listing.requests == 3 and listing.complete


async def test_sends_queue_offset_and_size(client: DLIClient) -> None:
    seen: list[dict[str, str]] = []

    def record(url: Any, **kwargs: Any) -> CallbackResult:
        seen.append(dict(url.query))
        return CallbackResult(
            body=orjson.dumps(page(3, "a", "b") if not len(seen) - 1 else page(3, "c"))
        )

    with aioresponses() as mock:
        mock.get(LIST, callback=record, repeat=True)
        await client.list_jobs("etl", page_size=2)
    assert seen == [
        {"from": "0", "size": "2", "queue_name": "etl"},
        {"from": "2", "size": "2", "queue_name": "etl"},
    ]


async def test_total_growing_mid_pass_keeps_paging_and_dedups(client: DLIClient) -> None:
    """A job inserted at the head shifts rows down: 'b' is read twice, and the pass follows the
    newest total (5), or it would stop at offset 4 of the old total and miss 'd'."""
    with aioresponses() as mock:
        mock.get(LIST, payload=page(4, "a", "b"))
        mock.get(LIST, payload=page(5, "b", "c"))  # new job 'n' at the head pushed b down
        mock.get(LIST, payload=page(5, "d"))
        listing = await client.list_jobs("q", page_size=2)
    assert sorted(listing.jobs) == ["a", "b", "c", "d"]
    assert not listing.complete, "total moved: the pass must not count as complete"


async def test_total_shrinking_mid_pass_is_incomplete(client: DLIClient) -> None:
    with aioresponses() as mock:
        mock.get(LIST, payload=page(4, "a", "b"))
        mock.get(LIST, payload=page(3, "d"))  # 'a' deleted: c slid onto page one, unseen
        listing = await client.list_jobs("q", page_size=2)
    assert sorted(listing.jobs) == ["a", "b", "d"] and not listing.complete


async def test_a_job_read_twice_makes_the_pass_incomplete_even_if_total_held(
    client: DLIClient,
) -> None:
    """An insert at the head and a delete further down leave total unchanged, but rows shifted:
    'b' is read twice, so some other job may have slipped between the pages."""
    with aioresponses() as mock:
        mock.get(LIST, payload=page(4, "a", "b"))
        mock.get(LIST, payload=page(4, "b", "d"))
        listing = await client.list_jobs("q", page_size=2)
    assert sorted(listing.jobs) == ["a", "b", "d"] and not listing.complete


async def test_server_side_page_cap_is_followed(client: DLIClient) -> None:
    with aioresponses() as mock:
        mock.get(LIST, payload=page(5, "a", "b"))  # asked for 4, the server gives at most 2
        mock.get(LIST, payload=page(5, "c", "d"))
        mock.get(LIST, payload=page(5, "e"))
        listing = await client.list_jobs("q", page_size=4)
        assert offsets(mock) == [0, 2, 4]
    assert len(listing.jobs) == 5


async def test_error_body_becomes_typed_error_with_request_id(client: DLIClient) -> None:
    with aioresponses() as mock:
        mock.get(
            LIST,
            status=400,
            headers={"X-Request-Id": "rid-7"},
            payload={"error_code": "DLI.0001", "error_msg": "Parameter check errors occur."},
        )
        with pytest.raises(APIError) as info:
            await client.list_jobs("q")
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
        listing = await client.list_jobs(
            "q", on_retry=lambda exc, attempt, delay: retries.append((exc.error_code, attempt))
        )
    assert list(listing.jobs) == ["a"]
    assert retries == [("HTTP503", 1), ("APIGW.0308", 2)]


async def test_retry_budget_bounds_a_poll(client: DLIClient) -> None:
    with aioresponses() as mock:
        mock.get(LIST, status=500, repeat=True)
        with pytest.raises(APIError):
            await client.list_jobs("q", budget=RetryBudget(2))
        assert len(offsets(mock)) == 3


async def test_retry_after_is_honoured(client: DLIClient) -> None:
    delays: list[float] = []
    with aioresponses() as mock:
        mock.get(LIST, status=429, headers={"Retry-After": "0.05"})
        mock.get(LIST, payload=page(0))
        await client.list_jobs("q", on_retry=lambda e, a, d: delays.append(d))
    assert delays and delays[0] >= 0.05


async def test_timeouts_and_connection_errors_are_typed_and_retried(client: DLIClient) -> None:
    with aioresponses() as mock:
        mock.get(LIST, exception=TimeoutError())
        mock.get(LIST, exception=aiohttp.ClientConnectionError("refused"))
        mock.get(LIST, payload=page(0))
        codes: list[str] = []
        await client.list_jobs("q", on_retry=lambda e, a, d: codes.append(e.error_code))
    assert codes == ["RequestTimeout", "TransportError"]

    with aioresponses() as mock:
        mock.get(LIST, exception=TimeoutError(), repeat=True)
        with pytest.raises(RequestTimeout):
            await client.list_jobs("q")
    with aioresponses() as mock:
        mock.get(LIST, exception=aiohttp.ClientConnectionError("refused"), repeat=True)
        with pytest.raises(TransportError):
            await client.list_jobs("q")


async def test_malformed_page_is_retried_then_reported(client: DLIClient) -> None:
    with aioresponses() as mock:
        mock.get(LIST, body=b'{"total": 1, "sess', headers={"X-Request-Id": "torn"})
        mock.get(LIST, payload=page(1, "a"))
        listing = await client.list_jobs("q")
    assert list(listing.jobs) == ["a"]
    with aioresponses() as mock:
        mock.get(LIST, body=b"<html>gateway</html>", repeat=True, headers={"X-Request-Id": "r9"})
        with pytest.raises(MalformedResponse, match="r9"):
            await client.list_jobs("q")


async def test_detail_not_found_is_none(client: DLIClient) -> None:
    detail = re.compile(r"^http://127\.0\.0\.1:9/v2\.0/p1/batches/[^/?]+$")
    with aioresponses() as mock:
        mock.get(
            detail,
            status=400,
            payload={"error_code": "DLI.0002", "error_msg": "The object does not exist."},
        )
        mock.get(detail, status=404)
        mock.get(detail, payload={"id": "x", "state": "success", "queue": "q"})
        assert await client.get_job("x") is None
        assert await client.get_job("x") is None
        found = await client.get_job("x")
    assert found is not None and found.state.value == "success"
