"""What the simulated DLI answers, transport aside: the list, detail and state endpoints as pure
functions of a :class:`World`, a request's query, and an :class:`ApiVariant`.

The variant has one switch per point the API's documentation leaves open, so the monitor can be
run against each way real DLI might behave: what ``total`` counts, the default row order and
whether ``order`` is honoured, the spelling of states, which filters are honoured, the status
and body shape of errors, the answer for a deleted job, a server-side cap on ``size``. The HTTP
app (``app.py``) and the tests' in-memory source both answer through these functions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from monitor.core.jobs import JobState
from monitor.simulator.world import SimJob, World

__all__ = ["ORDERS", "Answer", "ApiVariant", "detail_answer", "error_body", "list_answer"]

ORDERS = frozenset({"CREATE_TIME_DESC", "CREATE_TIME_ASC", "DURATION_DESC", "DURATION_ASC"})
MAX_PAGE_SIZE = 1000
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


@dataclass(frozen=True, slots=True)
class ApiVariant:
    """How this simulated DLI behaves on each open point (the defaults: as the seeds read)."""

    #: ``filtered``: rows matching the filters; ``project``: every job of the project whatever
    #: the filters (Apache Livy); ``missing``: no ``total`` at all
    total: Literal["filtered", "project", "missing"] = "filtered"
    #: row order when no ``order`` is sent
    default_order: Literal["newest", "oldest"] = "newest"
    ignore_order: bool = False
    #: how states are spelt: ``running``, ``Running`` or ``RUNNING``
    state_case: Literal["lower", "title", "upper"] = "lower"
    ignore_state_filter: bool = False
    ignore_time_filter: bool = False
    ignore_queue_filter: bool = False
    #: HTTP status of ``DLI.0999`` (DLI sends server-side failures as 400 too)
    server_error_status: int = 500
    #: the gateway's throttling code, and whether a ``Retry-After`` comes with it
    throttle_code: Literal["APIGW.0308", "APIG.0308"] = "APIGW.0308"
    throttle_retry_after: bool = True
    #: error body keys: error_code/error_msg, code/message, errorCode/errorMsg, or nested
    error_style: Literal["error_code", "code", "camel", "nested"] = "error_code"
    #: a deleted job's detail: 400 DLI.0002, a bare 404, or 400 DLI.0001 (a parameter error)
    deleted_answer: Literal["DLI.0002", "404", "DLI.0001"] = "DLI.0002"
    #: the server's own cap on ``size`` (None: MAX_PAGE_SIZE)
    page_cap: int | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP status and a JSON document."""

    status: int
    doc: dict[str, object]


def error_body(code: str, message: str, style: str, request_id: str) -> dict[str, object]:
    """An error document in one of the shapes huaweicloudsdkcore accepts."""
    if style == "code":
        return {"code": code, "message": message, "request_id": request_id}
    if style == "camel":
        return {"errorCode": code, "errorMsg": message}
    if style == "nested":
        return {"error": {"code": code, "message": message}}
    return {"error_code": code, "error_msg": message}


def _spell(state: JobState, case: str) -> str:
    if case == "title":
        return state.value.title()
    if case == "upper":
        return state.value.upper()
    return state.value


def _row(job: SimJob, now_ms: int, variant: ApiVariant) -> dict[str, object]:
    row = job.row(now_ms)
    row["state"] = _spell(job.state, variant.state_case)
    return row


def _error(status: int, code: str, message: str, variant: ApiVariant, rid: str) -> Answer:
    return Answer(status, error_body(code, message, variant.error_style, rid))


def list_answer(
    world: World, query: Mapping[str, str], variant: ApiVariant, request_id: str = ""
) -> Answer:
    """``GET /v2.0/{project_id}/batches`` with ``query``."""

    def integer(name: str, default: int, hi: int) -> int:
        raw = query.get(name)
        if raw is None or raw == "":
            return default
        if not raw.isdigit() or int(raw) > hi:
            raise ValueError(name)
        return int(raw)

    try:
        offset = integer("from", 0, 2**31)
        size = integer("size", 100, MAX_PAGE_SIZE)
        start = integer("start", -1, 2**62)
        end = integer("end", -1, 2**62)
        state_raw = query.get("state")
        state = JobState(state_raw.lower()) if state_raw else None
        order = query.get("order") or ""
        if order and order not in ORDERS:
            raise ValueError("order")  # noqa: TRY301 (answered as the integers' errors are)
    except ValueError as exc:
        name = str(exc).split("'")[1] if "'" in str(exc) else str(exc)
        return _error(400, "DLI.0001", f"Parameter check errors occur: {name}", variant, request_id)
    if not order or variant.ignore_order:
        order = "CREATE_TIME_DESC" if variant.default_order == "newest" else "CREATE_TIME_ASC"
    queue = query.get("queue_name") or query.get("cluster_name") or None
    jobs = world.select(
        queue=None if variant.ignore_queue_filter else queue,
        state=None if variant.ignore_state_filter else state,
        job_id=query.get("job-id") or None,
        job_name=query.get("job_name") or None,
        owner=query.get("owner") or None,
        start=None if start < 0 or variant.ignore_time_filter else start,
        end=None if end < 0 or variant.ignore_time_filter else end,
        order=order,
    )
    size = min(size, variant.page_cap or MAX_PAGE_SIZE)
    now = world.now_ms
    doc: dict[str, object] = {
        "from": offset,
        "sessions": [_row(job, now, variant) for job in jobs[offset : offset + size]],
    }
    if variant.total == "filtered":
        doc["total"] = len(jobs)
    elif variant.total == "project":
        doc["total"] = len(world.jobs)
    return Answer(200, doc)


def detail_answer(
    world: World, batch_id: str, variant: ApiVariant, *, state_only: bool, request_id: str = ""
) -> Answer:
    """``GET …/batches/{batch_id}`` (or ``…/state`` with ``state_only``)."""
    if not _UUID.match(batch_id):
        return _error(
            400, "DLI.0001", "Parameter check errors occur: batch_id", variant, request_id
        )
    job = world.jobs.get(batch_id)
    if job is None:
        if variant.deleted_answer == "404":
            return Answer(404, {})
        if variant.deleted_answer == "DLI.0001":
            return _error(400, "DLI.0001", "Parameter check errors occur", variant, request_id)
        return _error(400, "DLI.0002", "The object does not exist.", variant, request_id)
    state = _spell(job.state, variant.state_case)
    if state_only:
        return Answer(200, {"id": job.id, "state": state})
    doc = job.detail(world.now_ms)
    doc["state"] = state
    return Answer(200, doc)
