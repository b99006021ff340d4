"""The event stream: structlog configuration and the contract's event vocabulary.

One JSON object per line on stdout (or console rendering for humans). Every event carries
``event``, ``timestamp`` (ISO 8601, UTC) and ``level``; job events also carry the job's identity
and an ``event_id`` that is the same each time the same change is reported, so a log pipeline
can drop the replay that follows a crash between emitting an event and saving the state file.
"""

from __future__ import annotations

import hashlib
import logging
import sys
from collections.abc import Callable, Mapping
from typing import Any, Literal, TextIO, assert_never

import orjson
import structlog

from monitor.core.behaviour import ApiBehaviour
from monitor.core.failure import Failure
from monitor.core.jobs import Job, JobState
from monitor.core.snapshot import Change, Discovered, Forgotten, Transition, Vanished
from monitor.output.redact import log_tail

__all__ = [
    "EVENTS",
    "EventLog",
    "LogFormat",
    "LogLevel",
    "configure_logging",
    "event_id",
]

LogFormat = Literal["json", "console", "auto"]
LogLevel = Literal["debug", "info", "warning", "error"]
_LEVELS: dict[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

#: The contract's vocabulary, plus diagnostics: ``poll.rows_rejected`` (unreadable list rows),
#: ``state.save_failed`` (the state file could not be written), ``auth.clock_skew`` (signatures
#: rejected while this machine's clock is off the API's) and ``poll.strategy`` (a queue's polls
#: switched between full and incremental listings), ``job.forgotten`` (an active job missing and
#: unconfirmed for an hour, dropped without claiming it vanished) and ``api.behaviour`` (what the
#: API was first seen, or later seen differently, to do on an open point).
EVENTS = (
    "job.discovered",
    "job.transition",
    "job.vanished",
    "job.forgotten",
    "api.behaviour",
    "monitor.baseline",
    "poll.failed",
    "poll.rows_rejected",
    "state.save_failed",
    "auth.clock_skew",
    "poll.strategy",
    "monitor.started",
    "monitor.stopping",
)


def _orjson_dumps(obj: Any, **_: Any) -> bytes:
    return orjson.dumps(obj, default=str)


#: what a human reading the console wants first; identifiers stay in the JSON stream
_CONSOLE_FIRST = ("queue", "job_name", "from_state", "to_state", "state", "last_state")
_CONSOLE_HIDDEN = frozenset({"project_id", "event_id", "kind", "sc_type", "app_id", "owner"})


def _for_humans(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
    """Console only: lead with queue, job and states; leave machine identifiers out."""
    first = {k: event.pop(k) for k in _CONSOLE_FIRST if k in event}
    for key in _CONSOLE_HIDDEN & event.keys():
        if key != "project_id" or "job_id" in event:
            del event[key]
    return {"event": event.pop("event"), **first, **event}


def configure_logging(
    fmt: LogFormat = "auto", stream: TextIO | None = None, level: LogLevel = "info"
) -> None:
    """Send events of ``level`` and above to ``stream`` (stdout): JSON lines, or console
    rendering when asked or on a TTY with ``auto``."""
    out = stream if stream is not None else sys.stdout
    console = fmt == "console" or (fmt == "auto" and out.isatty())
    processors: list[Any] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
    ]
    if console:
        processors.append(_for_humans)
        processors.append(structlog.dev.ConsoleRenderer(colors=out.isatty(), sort_keys=False))
        factory: Any = structlog.PrintLoggerFactory(out)
    else:
        processors.append(structlog.processors.JSONRenderer(serializer=_orjson_dumps))
        buffer = getattr(out, "buffer", None)
        if buffer is not None:
            factory = structlog.BytesLoggerFactory(buffer)
        else:  # a text-only stream (tests' StringIO): decode the JSON bytes
            processors[-1] = structlog.processors.JSONRenderer(
                serializer=lambda obj, **kw: _orjson_dumps(obj).decode()
            )
            factory = structlog.PrintLoggerFactory(out)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=factory,
        cache_logger_on_first_use=False,
    )


def event_id(
    project_id: str, job_id: str, event: str, from_state: str, to_state: str, occurrence: int = 1
) -> str:
    """A short, stable hash of one reported change.

    The contract's five fields; a repeated change of the same job (its second recovery cycle) adds
    its occurrence number, or a log pipeline deduplicating on the id would drop a real event.
    """
    parts = [project_id, job_id, event, from_state, to_state]
    if occurrence > 1:
        parts.append(str(occurrence))
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).hexdigest()


class EventLog:
    """Writes the contract's events for one project and counts them through ``on_event``."""

    def __init__(
        self,
        project_id: str,
        on_event: Callable[[str], None] | None = None,
        *,
        region: str = "",
    ) -> None:
        self.project_id = project_id
        #: with several targets, one project may be watched in two regions: say which
        self.region = region
        self._log = structlog.get_logger("dli-monitor")
        self._on_event = on_event or (lambda name: None)

    def _emit(self, level: str, event: str, **fields: Any) -> None:
        if not self._log.is_enabled_for(_LEVELS[level]):
            return  # neither written nor counted: dli_monitor_events_total counts what is written
        if self.region:
            fields["region"] = self.region
        getattr(self._log, level)(event, **fields)
        self._on_event(event)

    def _job_fields(
        self, queue: str, job: Job, event: str, frm: str, to: str, n: int = 1
    ) -> dict[str, Any]:
        return {
            "project_id": self.project_id,
            "queue": queue,
            "job_id": job.id,
            "job_name": job.name,
            "owner": job.owner,
            "app_id": job.app_id,
            "kind": job.kind,
            "sc_type": job.sc_type,
            "event_id": event_id(self.project_id, job.id, event, frm, to, n),
        }

    def change(self, queue: str, change: Change, failure: Failure | None = None) -> None:
        """Emit the event for one snapshot change; a job that died carries ``failure``: its
        reason, and its log tail, redacted and bounded here, before it leaves the process."""
        died = _died(failure)
        match change:
            case Transition():
                name = "job.transition"
                frm, to = change.from_state.value, change.to_state.value
                self._emit(
                    "info",
                    name,
                    **self._job_fields(queue, change.job, name, frm, to, change.occurrence),
                    from_state=frm,
                    to_state=to,
                    in_state_seconds=round(change.in_state_seconds, 3),
                    duration_ms=change.duration_ms,
                    skipped=change.skipped,
                    **(died if change.to_state is JobState.DEAD else {}),
                )
            case Discovered():
                name = "job.discovered"
                state = change.job.state.value
                self._emit(
                    "info",
                    name,
                    **self._job_fields(queue, change.job, name, "", state),
                    state=state,
                    **(died if change.job.state is JobState.DEAD else {}),
                )
            case Vanished():
                name = "job.vanished"
                last = change.last_state.value
                self._emit(
                    "warning",
                    name,
                    **self._job_fields(queue, change.job, name, last, ""),
                    last_state=last,
                )
            case Forgotten():
                name = "job.forgotten"
                last = change.last_state.value
                self._emit(
                    "warning",
                    name,
                    **self._job_fields(queue, change.job, name, last, ""),
                    last_state=last,
                    missing_seconds=round(change.missing_seconds, 1),
                    reason="missing from the listings and never confirmed gone by its detail",
                )
            case _:
                assert_never(change)

    def api_behaviour(self, behaviour: ApiBehaviour) -> None:
        """What the API was seen to do on the open points (first learnt, or seen changed)."""
        self._emit(
            "info",
            "api.behaviour",
            project_id=self.project_id,
            summary=behaviour.describe(),
            **behaviour.labels(),
        )

    def baseline(self, queue: str, counts: Mapping[JobState, int]) -> None:
        self._emit(
            "info",
            "monitor.baseline",
            project_id=self.project_id,
            queue=queue,
            counts={state.value: counts.get(state, 0) for state in JobState},
        )

    def poll_failed(
        self, queue: str, error: str, error_code: str, attempt: int, retry_in: float, *, final: bool
    ) -> None:
        """A poll gave up (``final``: warning, once per failed poll, with the attempts it made)
        or one of its requests will be retried (debug: an outage is not a line per retry)."""
        self._emit(
            "warning" if final else "debug",
            "poll.failed",
            project_id=self.project_id,
            queue=queue,
            error=error,
            error_code=error_code,
            attempt=attempt,
            retry_in=round(retry_in, 3),
        )

    def poll_recovered(self, queue: str, failed_polls: int, down_seconds: float) -> None:
        self._emit(
            "info",
            "poll.recovered",
            project_id=self.project_id,
            queue=queue,
            failed_polls=failed_polls,
            down_seconds=round(down_seconds, 1),
        )

    def rows_rejected(
        self, queue: str, rejected: int, unknown_state: int, request_id: str | None
    ) -> None:
        self._emit(
            "warning",
            "poll.rows_rejected",
            project_id=self.project_id,
            queue=queue,
            rejected=rejected,
            unknown_state=unknown_state,
            request_id=request_id,
        )

    def strategy(self, queue: str, strategy: str, reason: str) -> None:
        self._emit(
            "info",
            "poll.strategy",
            project_id=self.project_id,
            queue=queue,
            strategy=strategy,
            reason=reason,
        )

    def request_ceiling(self, ceiling: str, policy: str, message: str) -> None:
        """A gateway's 429 stated a stricter policy than the ceiling enforced until now."""
        self._emit(
            "warning",
            "api.request_ceiling",
            project_id=self.project_id,
            ceiling=ceiling,
            policy=policy,
            message=message,
            hint="another process may share these keys' quota; requests now wait for it",
        )

    def clock_skew(self, skew_seconds: float) -> None:
        self._emit(
            "warning",
            "auth.clock_skew",
            project_id=self.project_id,
            skew_seconds=round(skew_seconds, 1),
            hint="signatures are valid for 15 minutes: synchronise this machine's clock (NTP)",
        )

    def state_save_failed(self, path: str, error: str) -> None:
        self._emit("error", "state.save_failed", project_id=self.project_id, path=path, error=error)

    def state_save_recovered(self, path: str) -> None:
        self._emit("info", "state.save_recovered", project_id=self.project_id, path=path)

    def started(self, version: str, config: Mapping[str, Any], *, degraded: bool = False) -> None:
        """Start-up; ``degraded`` (a state file that could not be used): warning, not info."""
        self._emit(
            "warning" if degraded else "info",
            "monitor.started",
            version=version,
            project_id=self.project_id,
            **config,
        )

    def stopping(self, version: str, reason: str) -> None:
        self._emit(
            "info", "monitor.stopping", version=version, project_id=self.project_id, reason=reason
        )


def _died(failure: Failure | None) -> dict[str, object]:
    """The fields a ``dead`` event adds: why, in one word and in the job's own last lines."""
    if failure is None:
        return {"reason": "unknown", "log_tail": [], "log_source": "none"}
    return {
        "reason": failure.reason,
        "log_tail": log_tail(failure.records),
        "log_source": failure.source,
    }
