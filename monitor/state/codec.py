"""The state file's format: snapshots to bytes and back. Pure; ``statefile.py`` does the I/O.

A state file belongs to one project at one endpoint; anything else (another project, a future
format version, garbage) is refused with a reason, so the daemon can set it aside and start from a
fresh baseline instead of reporting changes that never happened.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from monitor.core.jobs import Job, JobState
from monitor.core.snapshot import JobSnapshot
from monitor.core.tracked import ActiveJob, FinishedJob, TrackedJob

__all__ = ["FORMAT", "VERSION", "StateRejected", "decode", "encode"]

FORMAT = "dli-monitor-state"
VERSION = 1


class StateRejected(ValueError):
    """The bytes are not a state file this daemon may use; ``str()`` says why."""


def _row(job_id: str, t: TrackedJob) -> list[Any]:
    if isinstance(t, FinishedJob):
        # The row keeps its shape (and version 1) with empty fields where the record keeps
        # nothing: a reader never needed a finished job's name or times, nor any job's last
        # update time or duration (a transition takes them from the fresh reading).
        return [job_id, t.state.value, t.queue, "", "", "", "", "", t.create_time, None, None,
                0, 0, None]  # fmt: skip
    return [
        job_id, t.state.value, t.queue, t.name, t.owner, t.app_id, t.kind, t.sc_type,
        t.create_time, None, None, t.since_ms, t.recoveries, t.missing_since_ms,
    ]  # fmt: skip


def encode(
    snapshots: Mapping[str, JobSnapshot], *, project_id: str, endpoint: str, saved_at_ms: int
) -> bytes:
    """Serialize every target's snapshot (keyed by target label)."""
    return orjson.dumps(
        {
            "format": FORMAT,
            "version": VERSION,
            "project_id": project_id,
            "endpoint": endpoint,
            "saved_at_ms": saved_at_ms,
            "targets": {
                label: {
                    "jobs": [_row(job_id, t) for job_id, t in snap.items()],
                    "tombstones": dict(snap.tombstones),
                    "horizon_ms": snap.horizon_ms,
                }
                for label, snap in snapshots.items()
            },
        }
    )


def _tracked(row: Any) -> tuple[str, TrackedJob]:
    # 13 fields in files written before missing_since_ms was kept (it then starts afresh)
    if not isinstance(row, list) or len(row) not in (13, 14):
        raise StateRejected("a job row has the wrong shape")
    (job_id, state, queue, name, owner, app_id, kind, sc_type, ct, ut, dur, since, rec) = row[:13]
    missing = row[13] if len(row) == 14 else None
    strings = (job_id, state, queue, name, owner, app_id, kind, sc_type)
    if not all(isinstance(v, str) for v in strings):
        raise StateRejected("a job row has a non-text field")
    if not all(v is None or isinstance(v, int) for v in (ct, ut, dur)):
        raise StateRejected("a job row has a non-integer time")
    if not isinstance(since, int) or not isinstance(rec, int):
        raise StateRejected("a job row has a non-integer time")
    if missing is not None and (isinstance(missing, bool) or not isinstance(missing, int)):
        raise StateRejected("a job row has a non-integer time")
    try:
        parsed = JobState(state)
    except ValueError:
        raise StateRejected(f"unknown job state {state!r}") from None
    job = Job(job_id, parsed, queue, name, owner, app_id, kind, sc_type, ct, ut, dur)
    if parsed.terminal:
        return job_id, FinishedJob.of(job)
    return job_id, ActiveJob.of(job, since, rec, missing)


def decode(data: bytes, *, project_id: str, endpoint: str) -> dict[str, JobSnapshot]:
    """Parse a state file; raise :class:`StateRejected` if it is not ours to use."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise StateRejected(f"not JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise StateRejected("not a dli-monitor state file")
    if doc.get("version") != VERSION:
        raise StateRejected(f"format version {doc.get('version')!r}, this build reads {VERSION}")
    if doc.get("project_id") != project_id or doc.get("endpoint") != endpoint:
        raise StateRejected(
            f"saved for project {doc.get('project_id')!r} at {doc.get('endpoint')!r}, "
            f"not {project_id!r} at {endpoint!r}"
        )
    targets = doc.get("targets")
    if not isinstance(targets, dict):
        raise StateRejected("no targets")
    result: dict[str, JobSnapshot] = {}
    for label, body in targets.items():
        if not isinstance(body, dict) or not isinstance(body.get("jobs"), list):
            raise StateRejected(f"target {label!r} is malformed")
        tombstones = body.get("tombstones", {})
        if not isinstance(tombstones, dict) or not all(
            isinstance(v, int) for v in tombstones.values()
        ):
            raise StateRejected(f"target {label!r} has malformed tombstones")
        horizon = body.get("horizon_ms")
        if horizon is not None and not isinstance(horizon, int):
            raise StateRejected(f"target {label!r} has a malformed horizon")
        jobs = dict(map(_tracked, body["jobs"]))
        result[label] = JobSnapshot(jobs, tombstones, horizon)
    return result
