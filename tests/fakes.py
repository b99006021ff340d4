"""The simulated API in memory with a test's knobs on it, the real client over it, a fake clock.

:class:`FakeApi` is the simulator's in-memory transport (its own pure answer functions, under
any :class:`ApiVariant`) plus what tests script: failures, transient timeouts, rows edited. Its
:attr:`FakeApi.client` is the real :class:`~monitor.dli.client.DLIClient` over it, retries and
budget included, waiting nothing between attempts: poll rules are tested against every API
behaviour in milliseconds, with no HTTP and no sleeps; time moves only when a test moves it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TypeVar

import anyio.lowlevel
import orjson

from monitor.dli.client import DLIClient
from monitor.dli.errors import APIError, DLIError, RequestTimeout
from monitor.dli.retry import RetryPolicy
from monitor.dli.source import RetryBudget, RetryHook
from monitor.dli.transport import Request, Response
from monitor.simulator.api import Answer, error_body
from monitor.simulator.transport import InMemoryTransport
from monitor.simulator.world import World

__all__ = ["INSTANT", "FakeApi", "FakeClock", "RecordingClient"]

T = TypeVar("T")
#: the client's retry rules with no wait between attempts (delays are the retry tests' business)
INSTANT = RetryPolicy(base_delay=0.0, max_delay=0.0, throttle_floor=(0.0, 0.0))


@dataclass
class FakeClock:
    """Unix seconds that move only when told; also moves the world it drives."""

    now: float
    world: World | None = None

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
        if self.world is not None:
            self.world.advance(int(self.now * 1000))


@dataclass
class FakeApi(InMemoryTransport):
    """The simulated API in memory, with what a test scripts on top."""

    #: (endpoint, query) of every request answered or failed by script, in order (a transient
    #: timeout, retried by the client, is not one)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    #: what the next requests get instead of an answer, first first: an APIError as its status
    #: and body, any other error raised as a transport raises it (the client retries either
    #: if it is transient)
    failures: list[DLIError] = field(default_factory=list)
    #: what every detail request gets while it is set, as ``failures`` gives it
    detail_failure: DLIError | None = None
    #: called before every list answer (e.g. to move the world while a pass pages)
    on_list: Callable[[dict[str, str]], None] | None = None
    #: transient timeouts each request suffers before it is answered, retried by the client on
    #: the poll's budget and told to the poll's retry hook
    transient: int = 0
    #: detail answers leave out ``queue`` and ``cluster_name`` (the client fills in the queue the
    #: job was listed in)
    detail_without_queue: bool = False
    #: list rows leave out ``update_time`` (times then come from the poll clock)
    rows_without_update_time: bool = False
    #: list rows leave out ``create_time`` too
    rows_without_create_time: bool = False
    #: rows appended to the short or empty page that ends each pass (malformed or odd rows)
    extra_rows: list[object] = field(default_factory=list)
    _timeouts: dict[Request, int] = field(default_factory=dict)

    @cached_property
    def client(self) -> RecordingClient:
        """The real client over this API."""
        return RecordingClient(self)

    async def send(self, request: Request) -> Response:
        self.sent.append(request)
        # In flight: other requests may be sent before this one is answered, as on a network.
        await anyio.lowlevel.checkpoint()
        endpoint, query = self._described(request)
        failure = self.failures.pop(0) if self.failures else None
        if failure is None and endpoint == "detail":
            failure = self.detail_failure
        if failure is not None:
            self.requests.append((endpoint, query))
            if not isinstance(failure, APIError):
                raise failure
            doc = error_body(failure.code, failure.message, "error_code", "scripted")
            return Response(failure.status, orjson.dumps(doc))
        timeouts = self._timeouts.get(request, 0)
        if timeouts < self.transient:
            self._timeouts[request] = timeouts + 1
            raise RequestTimeout(f"attempt {timeouts + 1} timed out")
        self._timeouts.pop(request, None)
        self.requests.append((endpoint, query))
        if endpoint == "list" and self.on_list is not None:
            self.on_list(query)
        rid = f"rid-{len(self.requests)}"
        answer = self.answer(request, rid)
        if answer.status == 200:
            self._edit(endpoint, query, answer)
        return Response(answer.status, orjson.dumps(answer.doc), {"x-request-id": rid})

    @staticmethod
    def _described(request: Request) -> tuple[str, dict[str, str]]:
        if request.path.endswith("/batches"):
            return "list", dict(request.query)
        return "detail", {"id": request.path.rpartition("/")[2]}

    def _edit(self, endpoint: str, query: dict[str, str], answer: Answer) -> None:
        doc = answer.doc
        if endpoint == "detail":
            if self.detail_without_queue:
                doc.pop("queue", None)
                doc.pop("cluster_name", None)
            return
        rows: list[dict[str, object]] = doc["sessions"]  # type: ignore[assignment]
        if self.rows_without_update_time:
            for row in rows:
                row.pop("update_time", None)
        if self.extra_rows and len(rows) < int(query["size"]):
            doc["sessions"] = rows = [*rows, *self.extra_rows]  # type: ignore[list-item]
        if self.rows_without_create_time:
            for row in rows:
                row.pop("create_time", None)

    def lists(self) -> list[dict[str, str]]:
        return [q for endpoint, q in self.requests if endpoint == "list"]


class RecordingClient(DLIClient):
    """The real client over a :class:`FakeApi`, waiting nothing between retries; it records the
    budget each request spent from."""

    def __init__(self, api: FakeApi) -> None:
        super().__init__(api, api.world.project_id, retry=INSTANT)
        #: the retry budget each request was given, in order (one object per poll, if all is well)
        self.budgets: list[RetryBudget] = []
        #: retries left in each budget when it was first seen
        self.budget_sizes: list[float] = []

    async def request(
        self,
        endpoint: str,
        request: Request,
        parse: Callable[[bytes, str | None], T],
        budget: RetryBudget,
        on_retry: RetryHook | None,
    ) -> T:
        if all(budget is not b for b in self.budgets):
            self.budget_sizes.append(budget.retries)
        self.budgets.append(budget)
        return await super().request(endpoint, request, parse, budget, on_retry)
