"""Whatever the API answers (any status, any headers, JSON of any shape or no JSON at all), the
client gives a parsed page or a typed :class:`DLIError`, and a poll either applies whole or
leaves everything as it was: no event, no changed snapshot, the queue marked down."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson
from aioresponses import CallbackResult, aioresponses
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs
from yarl import URL

from monitor.core.behaviour import BehaviourBook
from monitor.dli.client import DLIClient, RetryBudget, RetryPolicy
from monitor.dli.errors import DLIError
from monitor.dli.ratelimit import Ceiling
from monitor.dli.transport import AiohttpTransport
from monitor.output.events import EventLog
from monitor.output.metrics import Metrics
from monitor.output.scope import Scope
from monitor.poll.poller import PolledQueue, PollOutput, PollSettings, QueuePoller

BASE = "http://127.0.0.1:9"
ANY = re.compile(r"^http://127\.0\.0\.1:9/v2\.0/p1/batches.*$")
FAST = RetryPolicy(
    attempts=2,
    base_delay=0.0001,
    max_delay=0.0002,
    max_retry_after=0.001,
    throttle_floor=(0.0001, 0.0002),
)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(
        st.sampled_from(["total", "sessions", "from", "id", "state", "queue", "error_code",
                         "error_msg", "code", "message", "update_time", "create_time",
                         "duration", "error"]) | st.text(max_size=6),
        inner,
        max_size=6,
    ),
    max_leaves=20,
)  # fmt: skip
rows = st.fixed_dictionaries(
    {"id": st.text(max_size=8) | st.integers(), "state": st.sampled_from(
        ["starting", "running", "dead", "success", "recovering", "Running", "busy", "", 3])},
    optional={"queue": st.sampled_from(["etl", "", None, 5]),
              "update_time": st.integers() | st.text(max_size=4) | st.none(),
              "create_time": st.integers() | st.floats() | st.none(),
              "duration": st.integers() | st.text(max_size=4)},
)  # fmt: skip
list_pages = st.fixed_dictionaries(
    {"sessions": st.lists(rows, max_size=4)},
    optional={"total": st.integers(-5, 10) | st.text(max_size=3) | st.none(),
              "from": st.integers(-1, 3)},
)  # fmt: skip


def dumps(value: object) -> bytes:
    """JSON as a server might write it: big integers and Infinity included."""
    return json.dumps(value).encode()


bodies = st.one_of(
    json_values.map(dumps),
    list_pages.map(dumps),
    st.binary(max_size=40),
    st.just(b""),
)
headers = st.dictionaries(
    st.sampled_from(["Retry-After", "Content-Type", "X-Request-Id", "Date", "Content-Encoding"]),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30)
    | st.sampled_from(["application/json", "0", "-1", "1e9", "Wed, 21 Oct 2015 07:28:00 GMT"]),
    max_size=3,
)
answers = st.tuples(st.sampled_from([200, 200, 200, 400, 401, 403, 404, 429, 500, 503]) |
                    st.integers(100, 599), headers, bodies)  # fmt: skip

Answer = tuple[int, dict[str, str], bytes]


def serve(mock: aioresponses, answer: Callable[[URL], Answer]) -> None:
    """Every request to the API gets what ``answer(url)`` returns (status, headers, body)."""

    def callback(url: URL, **kwargs: Any) -> CallbackResult:
        status, head, body = answer(url)
        return CallbackResult(status=status, headers=head, body=body)

    mock.get(ANY, callback=callback, repeat=True)


@FUZZ
@given(answers)
def test_any_answer_is_a_page_or_a_typed_error(answer: Answer) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            client = DLIClient(
                AiohttpTransport(session, BASE, ceiling=Ceiling(10**6), timeout=1), "p1", retry=FAST
            )
            with aioresponses() as mock:
                serve(mock, lambda url: answer)
                try:
                    page, _ = await client.for_poll(RetryBudget(2)).list_page(
                        offset=0, size=10, queue="etl"
                    )
                except DLIError as exc:
                    event(f"list: {type(exc).__name__}")
                else:
                    event("list: page")
                    assert all(job.id for job in page.jobs)
                try:
                    await client.for_poll(RetryBudget(2)).get_job("job-1", queue="etl")
                except DLIError as exc:
                    event(f"detail: {type(exc).__name__}")

    asyncio.run(scenario())


ROWS = [
    {"id": "a", "state": "running", "queue": "etl", "update_time": 1_000},
    {"id": "b", "state": "starting", "queue": "etl", "update_time": 1_000},
]


def good(url: URL) -> Answer:
    """A consistent listing of two jobs (an empty page past them), or job b's detail."""
    if "from" not in url.query:
        return 200, {}, orjson.dumps({**ROWS[1], "batch_id": "b"})
    offset = int(url.query["from"])
    rows = ROWS[offset:] if offset >= 0 else []
    return 200, {}, orjson.dumps({"from": offset, "total": 2, "sessions": rows})


@FUZZ
@given(st.lists(answers, min_size=1, max_size=6))
def test_a_poll_applies_whole_or_not_at_all(replies: list[Answer]) -> None:
    """A baseline from a good answer, then a poll served ``replies`` in turn (the last one
    repeated): applied, or nothing changed at all."""

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            client = DLIClient(
                AiohttpTransport(session, BASE, ceiling=Ceiling(10**6), timeout=1), "p1", retry=FAST
            )
            metrics = Metrics("fuzz")
            poller = QueuePoller(
                PolledQueue("etl"),
                client,
                PollOutput(EventLog("p1"), metrics.for_scope(Scope("p1"))),
                PollSettings(30, retries_per_poll=3),
                behaviour=BehaviourBook(),
            )
            queue: list[Answer] = []

            def next_answer(url: URL) -> Answer:
                if not queue:
                    return good(url)
                return queue.pop(0) if len(queue) > 1 else queue[0]

            with aioresponses() as mock:
                serve(mock, next_answer)
                assert await poller.poll(), "the baseline"
                before = poller.snapshot
                queue.extend(replies)
                with capture_logs() as logs:
                    applied = await poller.poll()
            up = metrics.registry.get_sample_value(
                "dli_monitor_up", {"project_id": "p1", "region": "", "queue": "etl"}
            )
            event("applied" if applied else "not applied")
            if applied:
                assert up == 1
                return
            assert poller.snapshot is before, "nothing of a failed poll is applied"
            assert not [e for e in logs if e["event"].startswith("job.")]
            assert up == 0
            assert [e["event"] for e in logs if e["log_level"] != "debug"] == ["poll.failed"]

    asyncio.run(scenario())
