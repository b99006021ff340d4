"""The state file's format: snapshots to bytes and back. Pure; ``statefile.py`` does the I/O.

A state file belongs to one project at one endpoint; anything else (another project, a future
format version, garbage) is refused with a reason, so the daemon can set it aside and start from a
fresh baseline instead of reporting changes that never happened.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from monitor.core.behaviour import ApiBehaviour, Seen, TotalMeaning
from monitor.core.jobs import Job, JobState
from monitor.core.resume import ResumeState
from monitor.core.snapshot import JobSnapshot
from monitor.core.tracked import ActiveJob, FinishedJob, TrackedJob

__all__ = ["FORMAT", "VERSION", "SavedState", "StateRejected", "decode", "decode_state", "encode"]

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


@dataclass(frozen=True, slots=True)
class SavedState:
    """What a state file holds: each poller's snapshot and resume state (by its label), and
    what the API was seen to do (``None`` in files written before it was kept)."""

    snapshots: dict[str, JobSnapshot]
    resume: dict[str, ResumeState] = field(default_factory=dict)
    behaviour: ApiBehaviour | None = None


def encode(
    snapshots: Mapping[str, JobSnapshot],
    *,
    project_id: str,
    endpoint: str,
    saved_at_ms: int,
    resume: Mapping[str, ResumeState] | None = None,
    behaviour: ApiBehaviour | None = None,
) -> bytes:
    """Serialize every poller's snapshot (keyed by its label), its resume state and the API's
    behaviour. Version 1 still: the parts added since are optional keys older files lack."""
    resume = resume or {}
    doc: dict[str, Any] = {
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
                **_resume_doc(resume.get(label)),
            }
            for label, snap in snapshots.items()
        },
    }
    if behaviour is not None:
        doc["behaviour"] = dataclasses.asdict(behaviour)
    return orjson.dumps(doc)


def _resume_doc(state: ResumeState | None) -> dict[str, Any]:
    if state is None:
        return {}
    kept = None
    if state.kept is not None:
        kept = [[queue, s.value, n] for (queue, s), n in sorted(state.kept.items())]
    return {"kept": kept, "counted_at_ms": state.counted_at_ms, "sizes": dict(state.sizes)}


def _resume(label: str, body: dict[str, Any]) -> ResumeState:
    kept_doc, counted, sizes = body.get("kept"), body.get("counted_at_ms"), body.get("sizes", {})
    kept: dict[tuple[str, JobState], int] | None = None
    if kept_doc is not None:
        if not isinstance(kept_doc, list):
            raise StateRejected(f"target {label!r} has malformed counts")
        kept = {}
        for row in kept_doc:
            if not (isinstance(row, list) and len(row) == 3 and isinstance(row[0], str)):
                raise StateRejected(f"target {label!r} has malformed counts")
            queue, state, n = row
            if not _is_int(n) or n < 0 or state not in {s.value for s in JobState}:
                raise StateRejected(f"target {label!r} has malformed counts")
            kept[(queue, JobState(state))] = n
    if counted is not None and not _is_int(counted):
        raise StateRejected(f"target {label!r} has a malformed count time")
    if not isinstance(sizes, dict) or not all(
        isinstance(k, str) and _is_int(v) and v >= 0 for k, v in sizes.items()
    ):
        raise StateRejected(f"target {label!r} has malformed pass sizes")
    return ResumeState(kept, counted, sizes)


def _behaviour(doc: Any) -> ApiBehaviour:
    """The saved verdicts; a verdict this build does not know is read as not yet seen."""
    if not isinstance(doc, dict):
        raise StateRejected("the API behaviour is malformed")
    known: dict[str, Any] = {}
    for f in dataclasses.fields(ApiBehaviour):
        value = doc.get(f.name)
        if f.name == "total":
            known[f.name] = TotalMeaning(value) if value in set(TotalMeaning) else None
        elif f.name == "spelling":
            known[f.name] = value if isinstance(value, str) else None
        elif f.name == "full_page_size":
            known[f.name] = value if isinstance(value, int) and _is_int(value) else None
        else:
            known[f.name] = Seen(value) if value in set(Seen) else None
    return ApiBehaviour(**{k: v for k, v in known.items() if v is not None})


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


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
    """The snapshots of a state file; raise :class:`StateRejected` if it is not ours to use."""
    return decode_state(data, project_id=project_id, endpoint=endpoint).snapshots


def decode_state(data: bytes, *, project_id: str, endpoint: str) -> SavedState:
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
    resume: dict[str, ResumeState] = {}
    for label, body in targets.items():
        result[label] = _snapshot(label, body)
        if any(key in body for key in ("kept", "counted_at_ms", "sizes")):
            resume[label] = _resume(label, body)
    behaviour = _behaviour(doc["behaviour"]) if "behaviour" in doc else None
    return SavedState(result, resume, behaviour)


def _snapshot(label: str, body: Any) -> JobSnapshot:
    if not isinstance(body, dict) or not isinstance(body.get("jobs"), list):
        raise StateRejected(f"target {label!r} is malformed")
    tombstones = body.get("tombstones", {})
    if not isinstance(tombstones, dict) or not all(isinstance(v, int) for v in tombstones.values()):
        raise StateRejected(f"target {label!r} has malformed tombstones")
    horizon = body.get("horizon_ms")
    if horizon is not None and not isinstance(horizon, int):
        raise StateRejected(f"target {label!r} has a malformed horizon")
    jobs = dict(map(_tracked, body["jobs"]))
    return JobSnapshot(jobs, tombstones, horizon)
