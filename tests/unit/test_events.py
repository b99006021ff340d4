"""The event stream's shape: contract keys in JSON, readable console lines, stable event ids."""

from __future__ import annotations

import hashlib
import io
import re
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import orjson
import pytest

from monitor.core.behaviour import ApiBehaviour, TotalMeaning
from monitor.core.jobs import Job, JobState
from monitor.core.snapshot import (
    Discovered,
    Forgotten,
    JobSnapshot,
    Observation,
    Transition,
    Vanished,
)
from monitor.output.events import EventLog, LogLevel, configure_logging, event_id

JOB = Job(
    "0a324461-d9d9-45da-a52a-3b3c7a3d809e",
    JobState.SUCCESS,
    "etl",
    name="nightly",
    owner="alice",
    app_id="application_1_1",
    kind="spark",
    sc_type="A",
)
T0 = 1_700_000_000_000


def job_in(state: JobState) -> Job:
    return msgspec.structs.replace(JOB, state=state)


JOB_KEYS = {
    "event",
    "timestamp",
    "level",
    "project_id",
    "queue",
    "job_id",
    "job_name",
    "owner",
    "app_id",
    "kind",
    "sc_type",
    "event_id",
}


def emit_all(fmt: str) -> str:
    out = io.StringIO()
    configure_logging(fmt, out)  # type: ignore[arg-type]
    counted: list[str] = []
    log = EventLog("p1", on_event=counted.append)
    log.change("etl", Discovered(JOB))
    log.change("etl", Transition(JOB, JobState.STARTING, JobState.SUCCESS, True, 12.3456, 99_000))
    log.change("etl", Vanished(JOB, JobState.RUNNING))
    log.baseline("etl", {JobState.RUNNING: 3})
    log.poll_failed("etl", "HTTP 500", "DLI.0999", 2, 1.5, final=False)  # debug: not written
    log.poll_failed("etl", "HTTP 500", "DLI.0999", 2, 1.5, final=True)
    assert counted == [
        "job.discovered",
        "job.transition",
        "job.vanished",
        "monitor.baseline",
        "poll.failed",
    ]
    return out.getvalue()


def test_outage_logging_is_one_warning_per_failed_poll_and_retries_at_debug() -> None:
    def written(level: LogLevel) -> list[dict[str, object]]:
        out = io.StringIO()
        configure_logging("json", out, level=level)
        counted: list[str] = []
        log = EventLog("p1", on_event=counted.append)
        for attempt in (1, 2, 3):
            log.poll_failed("etl", "HTTP 429", "APIGW.0308", attempt, 2.0, final=False)
        log.poll_failed("etl", "HTTP 429", "APIGW.0308", 4, 30, final=True)
        log.poll_recovered("etl", failed_polls=1, down_seconds=31.24)
        events = [orjson.loads(line) for line in out.getvalue().splitlines()]
        assert counted == [e["event"] for e in events], "counted as written, no more"
        return events

    quiet = written("info")
    assert [(e["event"], e["level"], e["attempt"]) for e in quiet[:1]] == [
        ("poll.failed", "warning", 4)
    ]
    assert quiet[1] | {"timestamp": ""} == {
        "event": "poll.recovered",
        "level": "info",
        "project_id": "p1",
        "queue": "etl",
        "failed_polls": 1,
        "down_seconds": 31.2,
        "timestamp": "",
    }
    assert len(quiet) == 2
    verbose = written("debug")
    assert [e["level"] for e in verbose] == ["debug"] * 3 + ["warning", "info"]


def test_json_events_carry_the_contract_keys() -> None:
    events = [orjson.loads(line) for line in emit_all("json").splitlines()]
    discovered, transition, vanished, baseline, failed = events
    for event in (discovered, transition, vanished):
        assert event.keys() >= JOB_KEYS
    assert discovered["state"] == "success"
    assert {
        k: transition[k]
        for k in ("from_state", "to_state", "skipped", "in_state_seconds", "duration_ms")
    } == {
        "from_state": "starting",
        "to_state": "success",
        "skipped": True,
        "in_state_seconds": 12.346,
        "duration_ms": 99_000,
    }
    assert vanished["last_state"] == "running" and vanished["level"] == "warning"
    assert baseline["counts"] == {
        "starting": 0,
        "running": 3,
        "recovering": 0,
        "success": 0,
        "dead": 0,
    }
    assert {k: failed[k] for k in ("queue", "error", "error_code", "attempt", "retry_in")} == {
        "queue": "etl",
        "error": "HTTP 500",
        "error_code": "DLI.0999",
        "attempt": 2,
        "retry_in": 1.5,
    }
    assert all(e["timestamp"].endswith("Z") and "T" in e["timestamp"] for e in events)


def test_console_leads_with_queue_job_and_states() -> None:
    line = emit_all("console").splitlines()[1]
    assert "job.transition" in line
    assert (
        line.index("queue=etl")
        < line.index("job_name=nightly")
        < line.index("from_state=starting")
        < line.index("to_state=success")
    )
    assert "event_id" not in line and "project_id" not in line


def test_event_id_is_stable_and_tells_repeated_cycles_apart() -> None:
    a = event_id("p1", "j1", "job.transition", "running", "recovering")
    assert a == event_id("p1", "j1", "job.transition", "running", "recovering")
    assert len(a) == 16 and int(a, 16) >= 0
    assert a != event_id("p2", "j1", "job.transition", "running", "recovering")
    assert a != event_id("p1", "j1", "job.transition", "running", "recovering", occurrence=2)
    assert a == event_id("p1", "j1", "job.transition", "running", "recovering", occurrence=1)


def test_events_carry_the_region_when_it_is_known() -> None:
    """One project watched in two regions (two targets): its events must not mix."""
    out = io.StringIO()
    configure_logging("json", out)
    EventLog("p1", region="cn-north-4").change("etl", Discovered(JOB))
    EventLog("p1").change("etl", Discovered(JOB))
    first, second = (orjson.loads(line) for line in out.getvalue().splitlines())
    assert (first["project_id"], first["region"]) == ("p1", "cn-north-4")
    assert "region" not in second, "no region invented for a private endpoint"
    assert first["event_id"] == second["event_id"], "the contract's id does not change"


def test_a_repeated_change_written_twice_has_two_ids_and_a_replay_the_same_ones() -> None:
    """Through the snapshot and EventLog, as the poller writes them: a job's second
    recovering -> running is a new event (a deduplicating pipeline must keep it), and the same
    history reported again (a replay after a crash) gives the same ids."""

    def written() -> list[dict[str, object]]:
        out = io.StringIO()
        configure_logging("json", out)
        log = EventLog("p1")
        snap = JobSnapshot.baseline([job_in(JobState.RUNNING)], now_ms=T0)
        cycle = [JobState.RECOVERING, JobState.RUNNING, JobState.RECOVERING, JobState.RUNNING]
        for i, state in enumerate(cycle):
            diff = snap.diff(Observation({JOB.id: job_in(state)}), now_ms=T0 + 1000 * (i + 1))
            for change in diff.changes:
                log.change("etl", change)
            snap = diff.snapshot
        return [orjson.loads(line) for line in out.getvalue().splitlines()]

    events = written()
    moves = [(e["from_state"], e["to_state"]) for e in events]
    assert moves == [("running", "recovering"), ("recovering", "running")] * 2
    ids = [e["event_id"] for e in events]
    assert len(set(ids)) == 4, "each occurrence has its own id"
    assert ids[0] == event_id("p1", JOB.id, "job.transition", "running", "recovering")
    assert ids[2] == event_id("p1", JOB.id, "job.transition", "running", "recovering", 2)
    assert [e["event_id"] for e in written()] == ids, "a replay gives the same ids"


def test_every_monitor_event_carries_exactly_its_fields() -> None:
    """Dashboards and log pipelines key on these fields: each event, whole, as written."""
    out = io.StringIO()
    configure_logging("json", out, level="debug")
    log = EventLog("p1", region="eu-west-101")
    log.poll_failed("etl", "HTTP 500", "DLI.0999", 2, 1.23456, final=False)
    log.poll_failed("etl", "HTTP 500", "DLI.0999", 3, 0.5, final=True)
    log.poll_recovered("etl", 3, 92.34567)
    log.rows_rejected("etl", 2, 1, "rid-9")
    log.strategy("etl", "incremental", "history of 5,000 jobs")
    log.clock_skew(-3599.96)
    log.state_save_failed("/var/lib/dli/state.json", "read-only file system")
    log.state_save_recovered("/var/lib/dli/state.json")
    log.stopping("1.2.3", "SIGTERM")
    written = [orjson.loads(line) for line in out.getvalue().splitlines()]
    for event in written:
        assert event.pop("timestamp").endswith("Z")
    scope = {"project_id": "p1", "region": "eu-west-101"}
    assert written == [
        {"event": "poll.failed", "level": "debug", **scope, "queue": "etl", "error": "HTTP 500",
         "error_code": "DLI.0999", "attempt": 2, "retry_in": 1.235},
        {"event": "poll.failed", "level": "warning", **scope, "queue": "etl", "error": "HTTP 500",
         "error_code": "DLI.0999", "attempt": 3, "retry_in": 0.5},
        {"event": "poll.recovered", "level": "info", **scope, "queue": "etl", "failed_polls": 3,
         "down_seconds": 92.3},
        {"event": "poll.rows_rejected", "level": "warning", **scope, "queue": "etl",
         "rejected": 2, "unknown_state": 1, "request_id": "rid-9"},
        {"event": "poll.strategy", "level": "info", **scope, "queue": "etl",
         "strategy": "incremental", "reason": "history of 5,000 jobs"},
        {"event": "auth.clock_skew", "level": "warning", **scope, "skew_seconds": -3600.0,
         "hint": "signatures are valid for 15 minutes: synchronise this machine's clock (NTP)"},
        {"event": "state.save_failed", "level": "error", **scope,
         "path": "/var/lib/dli/state.json", "error": "read-only file system"},
        {"event": "state.save_recovered", "level": "info", **scope,
         "path": "/var/lib/dli/state.json"},
        {"event": "monitor.stopping", "level": "info", **scope, "version": "1.2.3",
         "reason": "SIGTERM"},
    ]  # fmt: skip


def test_the_console_leads_with_the_event_and_keeps_a_project_only_where_no_job_is_named() -> None:
    out = io.StringIO()
    configure_logging("console", out)
    log = EventLog("p1")
    log.state_save_recovered("/state.json")
    log.change("etl", Discovered(JOB))
    project_line, job_line = out.getvalue().splitlines()
    assert "state.save_recovered" in project_line and "project_id=p1" in project_line
    assert "job.discovered" in job_line and "project_id" not in job_line
    assert job_line.index("job.discovered") < job_line.index("queue=etl")


def test_start_up_and_api_behaviour_events_carry_exactly_their_fields() -> None:
    out = io.StringIO()
    configure_logging("json", out)
    log = EventLog("p1")
    log.started("1.2.3", {"queues": ["etl"], "poll_interval": 30.0})
    log.started("1.2.3", {"state_file_status": "rejected"}, degraded=True)
    learnt = ApiBehaviour(total=TotalMeaning.FILTERED, spelling="Running")
    log.api_behaviour(learnt)
    written = [orjson.loads(line) for line in out.getvalue().splitlines()]
    for event in written:
        del event["timestamp"]
    assert written == [
        {"event": "monitor.started", "level": "info", "version": "1.2.3", "project_id": "p1",
         "queues": ["etl"], "poll_interval": 30.0},
        {"event": "monitor.started", "level": "warning", "version": "1.2.3", "project_id": "p1",
         "state_file_status": "rejected"},
        {"event": "api.behaviour", "level": "info", "project_id": "p1",
         "summary": learnt.describe(), **learnt.labels()},
    ]  # fmt: skip
    assert learnt.labels()["total"] == "filtered"


def test_the_api_behaviour_info_series_is_one_per_scope_with_the_verdicts_as_labels() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from monitor.output.levels import BehaviourCollector
    from monitor.output.scope import Scope

    registry = CollectorRegistry()
    learnt = ApiBehaviour(total=TotalMeaning.UNFILTERED)
    registry.register(
        BehaviourCollector(lambda: [(Scope("p1", "r1"), ApiBehaviour()), (Scope("p2"), learnt)])
    )
    text = generate_latest(registry).decode()
    assert text.startswith(
        "# HELP dli_monitor_api_behaviour_info What the DLI API was seen to do on the points its "
        "documentation leaves open; 'unknown' until observed.\n"
        "# TYPE dli_monitor_api_behaviour_info gauge\n"
    )
    samples = [line for line in text.splitlines() if not line.startswith("#")]
    assert len(samples) == 2 and all(line.endswith(" 1.0") for line in samples)
    assert samples[0] == (
        'dli_monitor_api_behaviour_info{order="unknown",project_id="p1",queue_filter="unknown",'
        'region="r1",spelling="lower",state_filter="unknown",time_filter="unknown",'
        'total="unknown"} 1.0'
    )
    assert 'project_id="p2",queue_filter="unknown",region="",' in samples[1]
    assert samples[1].endswith('total="unfiltered"} 1.0')
    empty = CollectorRegistry()
    empty.register(BehaviourCollector(list))
    assert generate_latest(empty) == b"", "no scope yet: no family at all"


def test_every_job_event_carries_exactly_its_fields() -> None:
    out = io.StringIO()
    configure_logging("json", out)
    log = EventLog("p1")
    running = job_in(JobState.RUNNING)
    log.change("etl", Discovered(JOB))
    log.change("etl", Transition(running, JobState.RECOVERING, JobState.RUNNING, False, 1.23456,
                                 None, occurrence=2))  # fmt: skip
    log.change("ml", Vanished(running, JobState.RUNNING))
    log.change("ml", Forgotten(running, JobState.RECOVERING, 3600.049))
    log.baseline("etl", {JobState.RUNNING: 3})
    written = [orjson.loads(line) for line in out.getvalue().splitlines()]
    for event in written:
        del event["timestamp"]

    def job(queue: str, event: str, frm: str, to: str, occurrence: int = 1) -> dict[str, object]:
        return {
            "project_id": "p1", "queue": queue, "job_id": JOB.id, "job_name": "nightly",
            "owner": "alice", "app_id": "application_1_1", "kind": "spark", "sc_type": "A",
            "event_id": event_id("p1", JOB.id, event, frm, to, occurrence),
        }  # fmt: skip

    assert written == [
        {"event": "job.discovered", "level": "info", **job("etl", "job.discovered", "", "success"),
         "state": "success"},
        {"event": "job.transition", "level": "info",
         **job("etl", "job.transition", "recovering", "running", 2),
         "from_state": "recovering", "to_state": "running", "in_state_seconds": 1.235,
         "duration_ms": None, "skipped": False},
        {"event": "job.vanished", "level": "warning", **job("ml", "job.vanished", "running", ""),
         "last_state": "running"},
        {"event": "job.forgotten", "level": "warning",
         **job("ml", "job.forgotten", "recovering", ""), "last_state": "recovering",
         "missing_seconds": 3600.0,
         "reason": "missing from the listings and never confirmed gone by its detail"},
        {"event": "monitor.baseline", "level": "info", "project_id": "p1", "queue": "etl",
         "counts": {"starting": 0, "running": 3, "recovering": 0, "success": 0, "dead": 0}},
    ]  # fmt: skip
    # the id is a hash of exactly these parts: pinned, so a pipeline's dedup keys never move
    assert event_id("p1", "j1", "job.transition", "running", "recovering") == (
        hashlib.blake2b(
            b"p1\x1fj1\x1fjob.transition\x1frunning\x1frecovering", digest_size=8
        ).hexdigest()
    )
    assert event_id("p1", "j1", "job.transition", "running", "recovering", 2) == (
        hashlib.blake2b(
            b"p1\x1fj1\x1fjob.transition\x1frunning\x1frecovering\x1f2", digest_size=8
        ).hexdigest()
    )


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_json_goes_to_a_binary_stream_as_bytes_with_a_utc_timestamp() -> None:
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="utf-8")
    configure_logging("auto", stream)  # not a terminal: JSON
    EventLog("p1").state_save_recovered("/s.json")
    line = raw.getvalue().decode()
    assert line.endswith("}\n") and line.count("\n") == 1
    event = orjson.loads(line)
    assert event["event"] == "state.save_recovered"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", event["timestamp"])
    stamped = datetime.fromisoformat(event["timestamp"])
    assert abs((datetime.now(UTC) - stamped).total_seconds()) < 60, "UTC, not local time"


def test_auto_renders_for_a_terminal_and_the_default_stream_is_stdout(
    capsys: pytest.CaptureFixture[str],
) -> None:
    terminal = _Terminal()
    configure_logging("auto", terminal)
    EventLog("p1").state_save_recovered("/s.json")
    assert not terminal.getvalue().startswith("{") and "state.save_recovered" in terminal.getvalue()
    configure_logging()  # auto, stdout: captured here, not a terminal
    EventLog("p1").state_save_recovered("/s.json")
    assert orjson.loads(capsys.readouterr().out)["event"] == "state.save_recovered"


def test_a_value_json_cannot_hold_is_written_as_text() -> None:
    out = io.StringIO()
    configure_logging("json", out)
    EventLog("p1").state_save_failed(Path("/s.json"), "x")  # type: ignore[arg-type]
    assert orjson.loads(out.getvalue())["path"] == "/s.json"
