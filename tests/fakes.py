"""An in-memory :class:`~monitor.dli.source.JobSource` over a simulated world, and a fake clock.

The answers come from the simulator's own pure answer functions (:mod:`monitor.simulator.api`)
under any :class:`ApiVariant`, so poll rules are tested against every API behaviour in
milliseconds, with no HTTP and no sleeps; time moves only when a test moves it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import orjson

from monitor.core.jobs import Job
from monitor.dli.errors import DLIError, RequestTimeout, api_error
from monitor.dli.models import ListPage, parse_job_detail, parse_list_page
from monitor.dli.source import RetryBudget, RetryCallback
from monitor.simulator.api import ApiVariant, detail_answer, list_answer
from monitor.simulator.world import World

__all__ = ["FakeClock", "WorldSource"]


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
class WorldSource:
    """DLI's list and detail endpoints over ``world``, as ``variant`` answers them."""

    world: World
    variant: ApiVariant = field(default_factory=ApiVariant)
    max_concurrency: int = 4
    #: (endpoint, query) of every request, in order
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    #: errors the next requests raise instead of answering, first first
    failures: list[DLIError] = field(default_factory=list)
    #: called before every list answer (e.g. to move the world while a pass pages)
    on_list: Callable[[dict[str, str]], None] | None = None
    #: transient failures each request suffers before it succeeds, retried as the client does:
    #: on the poll's budget, told to the poll's retry callback
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
    #: the retry budget each request was given, in order (one object per poll, if all is well)
    budgets: list[RetryBudget | None] = field(default_factory=list)
    #: retries left in each budget when it was first seen
    budget_sizes: list[float] = field(default_factory=list)

    def _retry_transients(self, budget: RetryBudget | None, on_retry: RetryCallback | None) -> None:
        if budget is not None and all(budget is not b for b in self.budgets):
            self.budget_sizes.append(budget.retries)
        self.budgets.append(budget)
        budget = budget or RetryBudget()
        for attempt in range(1, self.transient + 1):
            budget.sent()
            error = RequestTimeout(f"attempt {attempt} timed out")
            if not budget.take():
                raise error
            if on_retry is not None:
                on_retry(error, attempt, 0.0)
        budget.sent()

    async def list_page(
        self,
        *,
        offset: int,
        size: int,
        queue: str | None = None,
        filters: Sequence[tuple[str, str]] = (),
        budget: RetryBudget | None = None,
        on_retry: RetryCallback | None = None,
    ) -> tuple[ListPage, str | None]:
        query = {"from": str(offset), "size": str(size), **dict(filters)}
        if queue:
            query["queue_name"] = queue
        self.requests.append(("list", query))
        if self.failures:
            raise self.failures.pop(0)
        self._retry_transients(budget, on_retry)
        if self.on_list is not None:
            self.on_list(query)
        answer = list_answer(self.world, query, self.variant)
        if self.rows_without_update_time and answer.status == 200:
            for row in answer.doc["sessions"]:  # type: ignore[attr-defined]
                row.pop("update_time", None)
        if (
            self.extra_rows
            and answer.status == 200
            and len(answer.doc["sessions"]) < int(query["size"])  # type: ignore[arg-type]
        ):
            answer.doc["sessions"] = [*answer.doc["sessions"], *self.extra_rows]  # type: ignore[misc]
        if self.rows_without_create_time and answer.status == 200:
            for row in answer.doc["sessions"]:  # type: ignore[attr-defined]
                row.pop("create_time", None)
        body = orjson.dumps(answer.doc)
        if answer.status != 200:
            raise api_error(answer.status, body, None, None)
        return parse_list_page(body, default_queue=queue or ""), f"rid-{len(self.requests)}"

    async def get_job(
        self,
        job_id: str,
        *,
        queue: str | None = None,
        budget: RetryBudget | None = None,
        on_retry: RetryCallback | None = None,
    ) -> Job:
        self.requests.append(("detail", {"id": job_id}))
        if self.failures:
            raise self.failures.pop(0)
        self._retry_transients(budget, on_retry)
        answer = detail_answer(self.world, job_id, self.variant, state_only=False)
        if self.detail_without_queue:
            answer.doc.pop("queue", None)
            answer.doc.pop("cluster_name", None)
        body = orjson.dumps(answer.doc)
        if answer.status != 200:
            raise api_error(answer.status, body, None, None)
        return parse_job_detail(body, default_queue=queue or "")

    def lists(self) -> list[dict[str, str]]:
        return [q for endpoint, q in self.requests if endpoint == "list"]
