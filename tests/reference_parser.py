"""The list-page parser as it was before pages were decoded with msgspec (commit 7bb30cd).

Kept as the oracle of ``test_parser_equivalence.py``: every rule the product's parser must keep
(a malformed row counted and skipped, unknown states counted, strict types where the API is
strict) is whatever this code did, so the new parser is compared with it on generated pages.
Not used by the product.
"""

from __future__ import annotations

import sys
from typing import Any

import orjson

from monitor.dli.errors import MalformedResponse, UnknownJobState
from monitor.dli.models import Job, ListPage, parse_state


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
    return ListPage(
        total=total,
        rows=len(sessions),
        jobs=tuple(jobs),
        rejected=rejected,
        unknown_state=unknown,
        spelling=spelling,
    )


def parse_job_detail(body: bytes, *, default_queue: str = "", request_id: str | None = None) -> Job:
    """Parse a ``GET /v2.0/{project_id}/batches/{batch_id}`` response body."""
    doc = _load(body, request_id)
    try:
        return _job(doc, default_queue)
    except _UnknownState as exc:
        # Not retried: the same job gives the same unknown state until its state changes.
        raise UnknownJobState(str(exc.args[0])[:40], request_id) from None
    except TypeError as exc:
        raise MalformedResponse(f"job detail is malformed: {exc}", request_id) from None
