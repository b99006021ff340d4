"""The state file: round trips, refusal of foreign or corrupt files, and restarts that neither
repeat nor lose an event (graceful stop, and SIGKILL at an arbitrary moment)."""

from __future__ import annotations

import io
import time
from pathlib import Path

import anyio
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.app.config import Settings
from monitor.app.daemon import Daemon
from monitor.core.behaviour import ApiBehaviour, Seen, TotalMeaning
from monitor.core.jobs import Job, JobState
from monitor.core.resume import ResumeState
from monitor.core.snapshot import JobSnapshot
from monitor.core.tracked import ActiveJob, FinishedJob, TrackedJob
from monitor.output.events import configure_logging
from monitor.simulator import Simulator, World, running_simulator
from monitor.state import codec
from monitor.state.file import StateFile
from tests.harness import FAST, polls_made, running

opt_ms = st.one_of(st.none(), st.integers(0, 2**53))
jobs = st.builds(
    Job,
    id=st.uuids().map(str),
    state=st.sampled_from(list(JobState)),
    queue=st.text(max_size=8),
    name=st.text(max_size=8),
    owner=st.text(max_size=8),
    app_id=st.text(max_size=8),
    kind=st.text(max_size=4),
    sc_type=st.text(max_size=4),
    create_time=opt_ms,
    update_time=opt_ms,
    duration_ms=opt_ms,
)

PROJECT = "e2eproject"
QUEUES = ("etl", "adhoc")


def _record(job: Job, since: int, recoveries: int, missing: int | None) -> tuple[str, TrackedJob]:
    if job.state.terminal:
        return job.id, FinishedJob(job.state, job.queue, job.create_time)
    return job.id, ActiveJob.of(job, since, recoveries, missing)


tracked = st.builds(_record, jobs, st.integers(0, 2**53), st.integers(0, 9), opt_ms)
snapshots = st.builds(
    lambda ts, tomb, horizon: JobSnapshot(dict(ts), tomb, horizon),
    st.lists(tracked, max_size=10),
    st.dictionaries(st.uuids().map(str), st.integers(0, 2**53), max_size=4),
    opt_ms,
)


@given(st.dictionaries(st.sampled_from(["etl", "adhoc", "*"]), snapshots, max_size=3))
def test_codec_round_trip(snaps: dict[str, JobSnapshot]) -> None:
    data = codec.encode(snaps, project_id="p", endpoint="http://e", saved_at_ms=1)
    back = codec.decode(data, project_id="p", endpoint="http://e")
    assert {k: dict(v) for k, v in back.items()} == {k: dict(v) for k, v in snaps.items()}
    assert {k: dict(v.tombstones) for k, v in back.items()} == {
        k: dict(v.tombstones) for k, v in snaps.items()
    }
    assert {k: v.horizon_ms for k, v in back.items()} == {k: v.horizon_ms for k, v in snaps.items()}


verdicts = st.builds(
    ApiBehaviour,
    total=st.sampled_from(list(TotalMeaning)),
    order=st.sampled_from(list(Seen)),
    state_filter=st.sampled_from(list(Seen)),
    time_filter=st.sampled_from(list(Seen)),
    queue_filter=st.sampled_from(list(Seen)),
    spelling=st.sampled_from(["", "Running", "RUNNING"]),
    full_page_size=st.integers(0, 1000),
)
resumes = st.builds(
    ResumeState,
    kept=st.one_of(
        st.none(),
        st.dictionaries(
            st.tuples(st.sampled_from(["etl", "adhoc"]), st.sampled_from(list(JobState))),
            st.integers(0, 10**6),
            max_size=4,
        ),
    ),
    counted_at_ms=opt_ms,
    sizes=st.dictionaries(st.sampled_from(["all", "recent", "running"]), st.integers(0, 10**6)),
)


@given(st.dictionaries(st.sampled_from(["etl", "*"]), st.tuples(snapshots, resumes)), verdicts)
def test_counts_guesses_and_verdicts_survive_a_restart(
    saved: dict[str, tuple[JobSnapshot, ResumeState]], behaviour: ApiBehaviour
) -> None:
    data = codec.encode(
        {label: snap for label, (snap, _) in saved.items()},
        project_id="p",
        endpoint="http://e",
        saved_at_ms=1,
        resume={label: resume for label, (_, resume) in saved.items()},
        behaviour=behaviour,
    )
    back = codec.decode_state(data, project_id="p", endpoint="http://e")
    assert back.behaviour == behaviour
    assert back.resume == {label: resume for label, (_, resume) in saved.items()}


def test_a_file_written_before_counts_and_verdicts_were_kept_still_loads() -> None:
    snap = JobSnapshot.baseline([Job("a", JobState.RUNNING, "etl")], now_ms=1)
    back = codec.decode_state(
        codec.encode({"etl": snap}, project_id="p", endpoint="e", saved_at_ms=1),
        project_id="p",
        endpoint="e",
    )
    assert back.behaviour is None and back.resume == {}
    assert set(back.snapshots["etl"]) == {"a"}


@pytest.mark.parametrize(
    ("part", "value", "why"),
    [
        ("kept", [["etl", "finished", 3]], "malformed counts"),
        ("kept", [["etl", "dead", -1]], "malformed counts"),
        ("kept", {"etl": 3}, "malformed counts"),
        ("counted_at_ms", "soon", "malformed count time"),
        ("sizes", {"all": "many"}, "malformed pass sizes"),
    ],
)
def test_malformed_counts_are_refused_with_a_reason(part: str, value: object, why: str) -> None:
    snap = JobSnapshot.baseline([], now_ms=1)
    doc = orjson.loads(codec.encode({"etl": snap}, project_id="p", endpoint="e", saved_at_ms=1))
    doc["targets"]["etl"][part] = value
    with pytest.raises(codec.StateRejected, match=why):
        codec.decode_state(orjson.dumps(doc), project_id="p", endpoint="e")


def test_a_verdict_this_build_does_not_know_is_read_as_not_yet_seen() -> None:
    doc = orjson.loads(codec.encode({}, project_id="p", endpoint="e", saved_at_ms=1))
    doc["behaviour"] = {"total": "filtered", "order": "sometimes", "full_page_size": True}
    back = codec.decode_state(orjson.dumps(doc), project_id="p", endpoint="e")
    assert back.behaviour == ApiBehaviour(total=TotalMeaning.FILTERED)


GOOD_ROW = ["a", "running", "etl", "n", "o", "app", "k", "A", 1, 2, 3, 4, 0, None]


def test_rows_keep_the_version_1_shape_with_what_each_record_keeps() -> None:
    """An older reader parses these rows: fourteen fields, empty where the record keeps nothing
    (a finished job's names and counters, any job's update time and duration)."""
    done = Job("d", JobState.SUCCESS, "etl", "nightly", "bob", "app_1", "k", "A", 10, 20, 30)
    live = Job("r", JobState.RUNNING, "etl", "hourly", "amy", "app_2", "spark", "B", 11, 21, 31)
    snap = JobSnapshot.baseline([done, live], now_ms=500)
    doc = orjson.loads(codec.encode({"etl": snap}, project_id="p", endpoint="e", saved_at_ms=1))
    rows = sorted(doc["targets"]["etl"]["jobs"])
    assert rows == [
        ["d", "success", "etl", "", "", "", "", "", 10, None, None, 0, 0, None],
        ["r", "running", "etl", "hourly", "amy", "app_2", "spark", "B", 11, None, None, 21, 0,
         None],
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("doc", "why"),
    [
        ([], "not a dli-monitor state file"),
        ({"format": "other"}, "not a dli-monitor state file"),
        ({"format": "dli-monitor-state", "version": 2}, "format version 2, this build reads 1"),
        ({"project_id": "q"}, "saved for project 'q' at 'e', not 'p' at 'e'"),
        ({"endpoint": "f"}, "saved for project 'p' at 'f', not 'p' at 'e'"),
        ({"targets": []}, "no targets"),
        ({"targets": {"etl": []}}, "target 'etl' is malformed"),
        ({"targets": {"etl": {"jobs": {}}}}, "target 'etl' is malformed"),
        ({"targets": {"etl": {"jobs": [], "tombstones": []}}},
         "target 'etl' has malformed tombstones"),
        ({"targets": {"etl": {"jobs": [], "tombstones": {"a": "x"}}}},
         "target 'etl' has malformed tombstones"),
        ({"targets": {"etl": {"jobs": [], "horizon_ms": "x"}}},
         "target 'etl' has a malformed horizon"),
        ({"targets": {"etl": {"jobs": ["row"]}}}, "a job row has the wrong shape"),
        ({"targets": {"etl": {"jobs": [GOOD_ROW[:12]]}}}, "a job row has the wrong shape"),
        ({"targets": {"etl": {"jobs": [[*GOOD_ROW, 1]]}}}, "a job row has the wrong shape"),
        ({"targets": {"etl": {"jobs": [[7, *GOOD_ROW[1:]]]}}}, "a job row has a non-text field"),
        ({"targets": {"etl": {"jobs": [[*GOOD_ROW[:7], 7, *GOOD_ROW[8:]]]}}},
         "a job row has a non-text field"),
        ({"targets": {"etl": {"jobs": [[*GOOD_ROW[:8], "1", *GOOD_ROW[9:]]]}}},
         "a job row has a non-integer time"),
        ({"targets": {"etl": {"jobs": [[*GOOD_ROW[:10], 1.5, *GOOD_ROW[11:]]]}}},
         "a job row has a non-integer time"),
        ({"targets": {"etl": {"jobs": [[*GOOD_ROW[:11], "4", *GOOD_ROW[12:]]]}}},
         "a job row has a non-integer time"),
        ({"targets": {"etl": {"jobs": [[*GOOD_ROW[:12], "0", None]]}}},
         "a job row has a non-integer time"),
        ({"targets": {"etl": {"jobs": [[*GOOD_ROW[:13], True]]}}},
         "a job row has a non-integer time"),
        ({"targets": {"etl": {"jobs": [[*GOOD_ROW[:13], "9"]]}}},
         "a job row has a non-integer time"),
        ({"targets": {"etl": {"jobs": [["a", "zombie", *GOOD_ROW[2:]]]}}},
         "unknown job state 'zombie'"),
    ],
)  # fmt: skip
def test_a_state_file_that_is_not_ours_to_use_is_rejected_saying_why(doc: object, why: str) -> None:
    base = {"format": "dli-monitor-state", "version": 1, "project_id": "p", "endpoint": "e",
            "targets": {}}  # fmt: skip
    data = {**base, **doc} if isinstance(doc, dict) else doc
    with pytest.raises(codec.StateRejected) as info:
        codec.decode(orjson.dumps(data), project_id="p", endpoint="e")
    assert str(info.value) == why


def test_a_state_file_that_is_not_json_says_so() -> None:
    with pytest.raises(codec.StateRejected, match=r"^not JSON \("):
        codec.decode(b"{nope", project_id="p", endpoint="e")


def test_a_saved_file_says_when_it_was_saved() -> None:
    data = codec.encode({}, project_id="p", endpoint="e", saved_at_ms=1234)
    assert orjson.loads(data)["saved_at_ms"] == 1234


def test_a_file_from_before_missing_since_was_kept_still_loads() -> None:
    snap = JobSnapshot.baseline([Job("a", JobState.RUNNING, "etl")], now_ms=5)
    doc = orjson.loads(codec.encode({"etl": snap}, project_id="p", endpoint="e", saved_at_ms=1))
    doc["targets"]["etl"]["jobs"] = [row[:13] for row in doc["targets"]["etl"]["jobs"]]
    back = codec.decode(orjson.dumps(doc), project_id="p", endpoint="e")
    assert back["etl"].get("a") == ActiveJob("a", JobState.RUNNING, "etl", since_ms=5)


def test_foreign_corrupt_and_missing_files_are_fresh_starts(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    store = StateFile(path, project_id="p", endpoint="http://e")
    assert store.load().status == "absent"
    store.save({"etl": JobSnapshot.baseline([Job("a", JobState.RUNNING, "etl")], now_ms=1)})
    loaded = store.load()
    assert loaded.status == "loaded 1 jobs" and "a" in loaded.snapshots["etl"]
    assert not list(tmp_path.glob(".*.tmp")), "no temporary file is left behind"

    other = StateFile(path, project_id="q", endpoint="http://e").load()
    assert other.snapshots == {} and "rejected" in other.status and "'p'" in other.status
    assert not path.exists() and len(list(tmp_path.glob("state.json.rejected-*"))) == 1

    for garbage in (
        b"",
        b"{nope",
        b'{"format": "dli-monitor-state", "version": 99}',
        orjson.dumps({"format": "something-else"}),
    ):
        path.write_bytes(garbage)
        result = store.load()
        assert result.snapshots == {} and result.status.startswith("rejected"), garbage


async def test_a_graceful_stop_saves_exactly_what_was_last_published(tmp_path: Path) -> None:
    """The save loop is told of every applied poll, but a stop can come before it ran: the
    shutdown itself must save. Polls are far apart so the only saves are the first poll's and
    the stop's; the job moved in between shows which one the file holds."""
    configure_logging("json", io.StringIO())
    state = tmp_path / "state.json"
    world = World(PROJECT, ("etl",), seed=3, now_ms=int(time.time() * 1000), initial_jobs=10)
    async with running_simulator(Simulator(world)) as url:
        settings = Settings(
            project_id=PROJECT,
            endpoint=url,
            queues=("etl",),
            auth="none",
            poll_interval=3600,
            listen="127.0.0.1:0",
            state_file=state,
        )
        daemon = Daemon(settings)
        async with running(daemon):
            poller = daemon.pollers[0]
            assert poller.snapshot is not None
            published = {job_id: t.state for job_id, t in poller.snapshot.items()}
            with anyio.fail_after(5):
                while not state.exists():
                    await anyio.sleep(0.01)
            state.unlink()  # the first poll's save: gone, so only the stop can write it again
    assert state.exists(), "the graceful stop saved the state file"
    saved = codec.decode(state.read_bytes(), project_id=PROJECT, endpoint=url)
    assert {job_id: t.state for job_id, t in saved["etl"].items()} == published


def test_at_most_a_few_rejected_files_are_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A daemon restarted in a loop over a bad file must not fill its volume."""
    path = tmp_path / "state.json"
    (tmp_path / "state.json.rejected-notatime").write_text("a human's copy: never deleted")
    for second in range(1_000, 1_006):
        monkeypatch.setattr(time, "time", lambda second=second: float(second))
        path.write_bytes(b"not json")
        result = StateFile(path, project_id="p", endpoint="http://e").load()
        assert not result.usable and "set aside" in result.status
    kept = sorted(p.name for p in tmp_path.iterdir())
    assert kept == [
        "state.json.rejected-1003",
        "state.json.rejected-1004",
        "state.json.rejected-1005",
        "state.json.rejected-notatime",
    ]


async def test_save_failures_are_one_line_per_change_and_a_rejected_file_starts_at_warning(
    tmp_path: Path,
) -> None:
    world = World(PROJECT, QUEUES, seed=5, now_ms=int(time.time() * 1000), lifecycle=FAST)
    blocked = tmp_path / "volume"
    blocked.write_text("a file where the state directory should be")
    out = io.StringIO()
    configure_logging("json", out)
    async with running_simulator(Simulator(world, seed=5)) as url:
        settings = Settings(
            project_id=PROJECT, endpoint=url, queues=QUEUES, poll_interval=0.1, auth="none",
            listen="127.0.0.1:0", state_file=blocked / "state.json",
        )  # fmt: skip
        daemon = Daemon(settings)
        async with running(daemon):
            with anyio.fail_after(10):  # a save is tried after every applied poll (0.1 s)
                while polls_made(daemon, PROJECT, QUEUES) < 5:  # many polls, each one a failed save
                    await anyio.sleep(0.02)
                blocked.unlink()
                failed = polls_made(daemon, PROJECT, QUEUES)
                while (
                    polls_made(daemon, PROJECT, QUEUES) < failed + 5
                ):  # saves after the volume came back
                    await anyio.sleep(0.02)
    events = [orjson.loads(line) for line in out.getvalue().splitlines()]
    saves = [e for e in events if e["event"].startswith("state.save")]
    assert [(e["event"], e["level"]) for e in saves] == [
        ("state.save_failed", "error"),
        ("state.save_recovered", "info"),
    ]
    started = next(e for e in events if e["event"] == "monitor.started")
    assert started["level"] == "warning", "the state file could not even be read"
    assert started["state_file_status"].startswith("unreadable")

    (blocked / "state.json").write_bytes(b"{garbage")
    configure_logging("json", out := io.StringIO())
    async with (
        running_simulator(Simulator(world, seed=5)) as url,
        running(Daemon(settings.model_copy(update={"endpoint": url}))),
    ):
        pass
    started = orjson.loads(out.getvalue().splitlines()[0])
    assert started["event"] == "monitor.started" and started["level"] == "warning"
    assert started["state_file_status"].startswith("rejected")
