"""The parsing of DLI list and detail payloads into :class:`~monitor.core.jobs.Job` records.

Parsing is pure (bytes in, records out) so it can be tested and benchmarked without a network.
A list page is rejected whole when its envelope is wrong (not an object, ``sessions`` not a list,
``total`` not an integer); a single bad row is skipped and counted, because one odd job must not
stop the monitoring of all the others.

Two paths, one set of rules. A page is first decoded by msgspec straight into :class:`_Row`
structs of the fields we keep, skipping the rest (``log``, ``req_body``, …) without building
them: that is the documented API, and it costs a fraction of a generic JSON parse. A page the
strict schema refuses (a row that is not an object, a number where text belongs, a float time)
is parsed again, tolerantly, row by row, by the parser the strict path replaced; both give the
same :class:`ListPage` (``tests/unit/test_parser_equivalence.py`` compares them).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

import msgspec
import orjson

from monitor.core.failure import RawLog
from monitor.core.jobs import Job, JobState, parse_state
from monitor.dli.errors import MalformedResponse, UnknownJobState

#: the documented spellings, looked up first; parse_state reads the others
_STATES: dict[str, JobState] = {s.value: s for s in JobState}

__all__ = ["ListPage", "parse_job_detail", "parse_list_page"]


@dataclass(frozen=True, slots=True)
class ListPage:
    """One page of ``GET /v2.0/{project_id}/batches``.

    ``rows`` is how many rows the page carried (what decides whether it was the last page);
    ``rejected`` of them were malformed and ``unknown_state`` had a state we do not know.
    ``total`` is ``None`` when the API left it out. ``spelling`` is a state as the API spelt it
    when that was not the documented lower case (``Running``), for the behaviour report.
    """

    total: int | None
    rows: int
    jobs: tuple[Job, ...]
    rejected: int = 0
    unknown_state: int = 0
    spelling: str | None = None
    #: the ``log`` of each dead row, undecoded (an event says why the job died; no other row's
    #: log is ever read)
    dead_logs: Mapping[str, RawLog] = field(default_factory=dict)


# int64, which msgspec can bound; orjson reads up to 2**64 - 1 as an integer and beyond as a
# float, so larger values take the tolerant path, which keeps its rule for them.
_Int = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]


class _Row(msgspec.Struct, gc=False):
    """A list row or a job detail as the API documents it; every other field is skipped."""

    id: str
    state: str
    queue: str | None = None
    cluster_name: str | None = None
    name: str | None = None
    owner: str | None = None
    app_id: str | None = msgspec.field(default=None, name="appId")
    kind: str | None = None
    sc_type: str | None = None
    create_time: _Int | None = None
    update_time: _Int | None = None
    duration: _Int | None = None
    #: skipped, not decoded: only a dead row's is read (empty when the row has none)
    log: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)


class _Page(msgspec.Struct, gc=False):
    sessions: list[_Row] | None = None
    total: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)] | None = None


_PAGE = msgspec.json.Decoder(_Page)
_DETAIL = msgspec.json.Decoder(_Row)
_Refused = (msgspec.ValidationError, msgspec.DecodeError)


def _fast_job(row: _Row, state: JobState, default_queue: str) -> Job:
    return Job(
        row.id,
        state,
        row.queue or row.cluster_name or default_queue,
        row.name or "",
        row.owner or "",
        row.app_id or "",
        row.kind or "",
        row.sc_type or "",
        row.create_time,
        row.update_time,
        row.duration,
    )


def _shared(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    # Interned: queue, owner, kind and sc_type repeat across thousands of rows.
    return sys.intern(value) if isinstance(value, str) else ""


def _text(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    return value if isinstance(value, str) else ""


def _millis(row: dict[str, Any], key: str) -> int | None:
    value = row.get(key)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    return None


class _UnknownState(Exception):
    pass


def _job(row: object, default_queue: str) -> Job:
    if not isinstance(row, dict):
        raise TypeError  # a list row only: a detail that is not an object fails in _load
    job_id = row.get("id")
    state = row.get("state")
    if not isinstance(job_id, str) or not job_id or not isinstance(state, str):
        raise TypeError("row has no id or state")
    parsed = parse_state(state)
    if parsed is None:
        raise _UnknownState(state)
    # The list rows document both `queue` and `cluster_name`; old rows carry only the latter.
    queue = _shared(row, "queue") or _shared(row, "cluster_name") or default_queue
    return Job(
        id=job_id,
        state=parsed,
        queue=queue,
        name=_text(row, "name"),
        owner=_shared(row, "owner"),
        app_id=_text(row, "appId"),
        kind=_shared(row, "kind"),
        sc_type=_shared(row, "sc_type"),
        create_time=_millis(row, "create_time"),
        update_time=_millis(row, "update_time"),
        duration_ms=_millis(row, "duration"),
    )


def _load(body: bytes, request_id: str | None) -> dict[str, Any]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedResponse(f"response is not JSON: {exc}", request_id) from None
    if not isinstance(doc, dict):
        raise MalformedResponse("response is not a JSON object", request_id)
    return doc


def parse_list_page(
    body: bytes, *, default_queue: str = "", request_id: str | None = None
) -> ListPage:
    """Parse a list response body; raise :class:`MalformedResponse` if the envelope is wrong."""
    try:
        page = _PAGE.decode(body)
    except _Refused:
        return _tolerant_list_page(body, default_queue, request_id)
    rows = page.sessions or ()
    jobs: list[Job] = []
    rejected = unknown = 0
    spelling: str | None = None
    logs: dict[str, RawLog] = {}
    for row in rows:
        if not row.id:
            rejected += 1
            continue
        state = _STATES.get(row.state)
        if state is None:
            state = parse_state(row.state)
            if state is None:
                unknown += 1
                continue
            if spelling is None:
                spelling = row.state
        jobs.append(_fast_job(row, state, default_queue))
        if state is JobState.DEAD and len(row.log):
            logs[row.id] = RawLog(bytes(row.log))  # a copy: the page's buffer is not kept
    return ListPage(page.total, len(rows), tuple(jobs), rejected, unknown, spelling, logs)


def _tolerant_list_page(body: bytes, default_queue: str, request_id: str | None) -> ListPage:
    """The same rules, on a page the strict schema refused: the envelope is checked, and each
    row is read field by field, so only the rows that are really unusable are lost."""
    doc = _load(body, request_id)
    sessions = doc.get("sessions")
    total = doc.get("total")
    if sessions is None:
        sessions = []
    if not isinstance(sessions, list):
        raise MalformedResponse("'sessions' is not a list", request_id)
    # Livy-style APIs may leave `total` out; one that is there must be a count.
    if total is not None and (isinstance(total, bool) or not isinstance(total, int) or total < 0):
        raise MalformedResponse("'total' is not a non-negative integer", request_id)
    jobs: list[Job] = []
    rejected = unknown = 0
    spelling: str | None = None
    logs: dict[str, RawLog] = {}
    for row in sessions:
        try:
            job = _job(row, default_queue)
        except _UnknownState:
            unknown += 1
            continue
        except TypeError:
            rejected += 1
            continue
        jobs.append(job)
        if spelling is None and row["state"] != job.state.value:
            spelling = row["state"]
        if job.state is JobState.DEAD and "log" in row:
            logs[job.id] = RawLog.of(row["log"])
    return ListPage(
        total=total,
        rows=len(sessions),
        jobs=tuple(jobs),
        rejected=rejected,
        unknown_state=unknown,
        spelling=spelling,
        dead_logs=logs,
    )


def parse_job_detail(body: bytes, *, default_queue: str = "", request_id: str | None = None) -> Job:
    """Parse a ``GET /v2.0/{project_id}/batches/{batch_id}`` response body."""
    try:
        row = _DETAIL.decode(body)
    except _Refused:
        pass
    else:
        state = parse_state(row.state)
        if row.id and state is not None:
            return _fast_job(row, state, default_queue)
    return _tolerant_job_detail(body, default_queue, request_id)


def _tolerant_job_detail(body: bytes, default_queue: str, request_id: str | None) -> Job:
    """The same rules, on a detail the strict schema refused, or whose id or state is unusable
    (which is then said precisely)."""
    doc = _load(body, request_id)
    try:
        return _job(doc, default_queue)
    except _UnknownState as exc:
        # Not retried: the same job gives the same unknown state until its state changes.
        raise UnknownJobState(str(exc.args[0])[:40], request_id) from None
    except TypeError as exc:
        raise MalformedResponse(f"job detail is malformed: {exc}", request_id) from None
