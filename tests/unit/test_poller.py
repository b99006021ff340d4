"""The poller's rules, against an in-memory source and a fake clock: no HTTP, no sleeps.

Each test drives a simulated world by hand (jobs submitted and moved explicitly), polls once per
step, and asserts the exact events and metric samples.
"""

from __future__ import annotations

import anyio
import orjson
import pytest
from structlog.testing import capture_logs

from monitor.core.jobs import JobState
from monitor.core.snapshot import UNCONFIRMED_TTL_MS
from monitor.dli.transport import Request, Response
from monitor.poll.poller import PolledQueue, PollSettings, QueuePoller, next_start
from monitor.poll.strategy import FullStrategy, StrategySetting
from monitor.simulator import ApiVariant, World
from tests.fakes import FakeApi
from tests.rig import T0, Rig, job_events, output

S = JobState


@pytest.mark.parametrize(
    "variant",
    [
        ApiVariant(),
        ApiVariant(total="project"),
        ApiVariant(total="missing"),
        ApiVariant(state_case="upper", default_order="oldest", ignore_order=True),
        ApiVariant(page_cap=3, error_style="nested"),
    ],
    ids=["seeds", "livy-total", "no-total", "upper-oldest", "page-cap"],
)
async def test_a_transition_is_reported_once_on_every_api_variant(variant: ApiVariant) -> None:
    rig = Rig(variant)
    await rig.poll()  # baseline
    job = rig.active()
    rig.world.set_state(job, S.SUCCESS)
    rig.clock.advance(30)
    assert job_events(await rig.poll()) == [("job.transition", job, "success")]
    assert job_events(await rig.poll()) == []
    assert rig.sample("dli_monitor_up", queue="etl") == 1
    assert (
        rig.sample(
            "dli_batch_job_transitions_total", queue="etl", from_state="running", to_state="success"
        )
        == 1
    )
    assert (
        rig.sample("dli_batch_job_state_duration_seconds_count", queue="etl", state="running") == 1
    )


@pytest.mark.parametrize(
    ("answer", "vanishes"), [("DLI.0002", True), ("404", False), ("DLI.0001", False)]
)
async def test_a_deleted_job_vanishes_only_on_the_documented_code(
    answer: str, vanishes: bool
) -> None:
    rig = Rig(ApiVariant(deleted_answer=answer))  # type: ignore[arg-type]
    await rig.poll()
    job = rig.active()
    rig.world.delete(job)
    rig.clock.advance(30)
    first = job_events(await rig.poll())
    assert first == ([("job.vanished", job, "running")] if vanishes else [])
    rig.clock.advance(30)
    assert job_events(await rig.poll()) == []
    if not vanishes:
        # Never stuck as active forever: forgotten (not "vanished") after the TTL.
        rig.clock.advance(UNCONFIRMED_TTL_MS / 1000)
        assert job_events(await rig.poll()) == [("job.forgotten", job, "running")]
        summary = rig.poller.summary
        assert summary is not None
        assert summary.counts.get(("etl", S.RUNNING), 0) == rig.world.counts("etl")[S.RUNNING]


async def test_a_failed_detail_request_is_not_taken_for_a_deleted_job() -> None:
    from monitor.dli.errors import APIError, RequestTimeout

    rig = Rig()
    await rig.poll()
    job = rig.active()
    rig.world.delete(job)
    rig.clock.advance(30)
    # The listing answers; the detail request then fails (a timeout, a 500, a 404 without code).
    for failure in (
        RequestTimeout("slow"),
        APIError(500, "DLI.0999", "oops"),
        APIError(404, "", ""),
    ):
        rig.source.detail_failure = failure  # every attempt of the poll's detail request
        assert job_events(await rig.poll()) == []
        rig.source.detail_failure = None
    assert job_events(await rig.poll()) == [("job.vanished", job, "running")]


async def test_an_incomplete_listing_forgets_no_finished_job() -> None:
    rig = Rig()
    await rig.poll()
    newest_first = rig.world.select(queue="etl", order="CREATE_TIME_DESC")
    head, hidden = newest_first[0], newest_first[4]  # page_size is 4: `hidden` opens page 2
    rig.world.set_state(hidden.id, S.SUCCESS)
    rig.clock.advance(30)
    await rig.poll()
    before = rig.poller.summary
    assert before is not None

    # While the next pass pages, the newest job is deleted after page 1 was read: every row moves
    # up one, `hidden` slips from page 2 into page 1's range and is read by neither. total
    # changed between pages, so the pass is known to be incomplete.
    def delete_head(query: dict[str, str]) -> None:
        if query["from"] == "4" and head.id in rig.world.jobs:
            rig.world.delete(head.id)

    rig.source.on_list = delete_head
    rig.clock.advance(30)
    await rig.poll()
    after = rig.poller.summary
    assert after is not None
    assert hidden.id in rig.poller.snapshot  # type: ignore[operator]
    assert after.counts[("etl", S.SUCCESS)] == before.counts[("etl", S.SUCCESS)] - (
        head.state is S.SUCCESS
    )
    assert hidden.id not in rig.poller.snapshot.tombstones  # type: ignore[union-attr]


async def test_a_job_that_shows_up_late_within_the_margin_is_still_listed() -> None:
    rig = Rig(strategy="incremental", jobs=60)
    await rig.until_incremental()
    await rig.poll()
    newest = rig.incremental().watermark_ms
    assert newest is not None
    # A job created 30 s before the newest one seen becomes visible only now, already finished.
    late = rig.world.submit("etl", at_ms=newest - 30_000)
    rig.world.set_state(late.id, S.SUCCESS)
    rig.clock.advance(30)
    assert ("job.discovered", late.id, "success") in job_events(await rig.poll())


class OddDetail(FakeApi):
    """Answers every detail with a state this version does not know."""

    async def send(self, request: Request) -> Response:
        if request.path.endswith("/batches"):
            return await super().send(request)
        job_id = request.path.rpartition("/")[2]
        self.requests.append(("detail", {"id": job_id}))
        body = orjson.dumps({"id": job_id, "state": "QUEUED"})
        return Response(200, body, {"x-request-id": "rid-odd"})


async def test_an_unknown_state_in_a_detail_is_counted_logged_once_and_never_retried() -> None:
    rig = Rig(source=OddDetail(World("p1", ("etl",), now_ms=0)))
    await rig.poll()
    job = rig.active()
    rig.world.delete(job)
    logs = []
    for _ in range(3):
        rig.clock.advance(30)
        logs += await rig.poll()
    details = [q for endpoint, q in rig.source.requests if endpoint == "detail"]
    assert len(details) == 3, "one detail request per poll, none retried"
    rejected = [e for e in logs if e["event"] == "poll.rows_rejected"]
    assert [(e["queue"], e["rejected"], e["unknown_state"], e["request_id"]) for e in rejected] == [
        ("etl", 0, 1, "rid-odd")
    ]
    assert rig.sample("dli_monitor_rejected_rows_total", queue="etl", reason="unknown_state") == 3
    assert job_events(logs) == []


async def test_a_failed_poll_marks_the_queue_down_says_so_once_and_then_that_it_recovered() -> None:
    from monitor.dli.errors import APIError

    rig = Rig()
    await rig.poll()
    assert rig.sample("dli_monitor_up", queue="etl") == 1
    rig.source.failures = [APIError(403, "DLI.0003", "forbidden")]
    rig.clock.advance(30)
    logs = await rig.poll()
    assert rig.sample("dli_monitor_up", queue="etl") == 0
    failed = [e for e in logs if e["event"] == "poll.failed"]
    assert [(e["log_level"], e["error_code"], e["queue"], e["attempt"]) for e in failed] == [
        ("warning", "DLI.0003", "etl", 1)
    ]
    assert failed[0]["error"] == "HTTP 403 DLI.0003: forbidden" and failed[0]["retry_in"] == 30
    rig.source.failures = [APIError(403, "DLI.0003", "forbidden")]
    rig.clock.advance(30)
    assert [e["event"] for e in await rig.poll()] == ["poll.failed"]
    rig.clock.advance(30)
    logs = await rig.poll()
    assert rig.sample("dli_monitor_up", queue="etl") == 1
    recovered = [e for e in logs if e["event"] == "poll.recovered"]
    assert [(e["queue"], e["failed_polls"], e["down_seconds"]) for e in recovered] == [
        ("etl", 2, 60)
    ]
    rig.clock.advance(30)
    assert not [e for e in await rig.poll() if e["event"] == "poll.recovered"], "said once"


@pytest.mark.parametrize("strategy", ["full", "incremental", "auto"])
async def test_every_request_of_a_poll_retries_on_the_poll_s_budget_and_says_so(
    strategy: StrategySetting,
) -> None:
    rig = Rig(strategy=strategy, jobs=60, retries=40)
    for _ in range(1 if strategy == "auto" else 3):  # auto: next comes the probing poll
        await rig.poll()
        rig.clock.advance(30)
    rig.world.delete(rig.active())  # a detail request too
    rig.source.transient = 1
    rig.source.requests.clear()
    logs = await rig.poll()
    retried = [e for e in logs if e["event"] == "poll.failed"]
    assert len(retried) == len(rig.source.requests) > 1
    assert {
        (e["log_level"], e["error_code"], e["queue"], e["attempt"], e["error"], e["retry_in"])
        for e in retried
    } == {("debug", "RequestTimeout", "etl", 1, "attempt 1 timed out", 0.0)}
    polls = 2 if strategy == "auto" else 4
    assert rig.sample("dli_monitor_poll_duration_seconds_count", queue="etl") == polls
    assert rig.sample("dli_monitor_up", queue="etl") == 1
    # The same poll on a budget of two retries gives up, once at warning, and applies nothing.
    stingy = Rig(strategy=strategy, jobs=60, retries=2)
    stingy.source.transient = 1
    logs = await stingy.poll()
    levels = [e["log_level"] for e in logs if e["event"] == "poll.failed"]
    assert levels == ["debug"] * (len(levels) - 1) + ["warning"]
    assert stingy.poller.snapshot is None


async def test_a_job_confirmed_by_its_detail_stays_in_the_queue_it_was_listed_in() -> None:
    rig = Rig(queues=("etl", "ml"), jobs=30)
    rig.source.detail_without_queue = True
    await rig.poll()
    job = next(j for j in rig.world.jobs.values() if j.queue == "etl" and j.state is S.RUNNING)
    # Finished and already gone from the listing (a long poll interval): its detail tells.
    rig.world.set_state(job.id, S.DEAD)
    rig.world.jobs[job.id].queue = "hidden"
    rig.clock.advance(30)
    logs = await rig.poll()
    assert [(e["queue"], e["to_state"]) for e in logs if e["event"] == "job.transition"] == [
        ("etl", "dead")
    ]
    summary = rig.poller.summary
    assert summary is not None and ("", S.DEAD) not in summary.counts


async def test_every_request_of_a_poll_spends_one_budget_per_poll() -> None:
    # auto's first poll: a full listing that probes total; incremental: its own requests
    runs: tuple[tuple[StrategySetting, int], ...] = (("auto", 0), ("incremental", 2))
    for strategy, warm_up in runs:
        rig = Rig(strategy=strategy, jobs=60)
        for _ in range(warm_up):
            await rig.poll()
            rig.clock.advance(30)
        if strategy == "auto":
            assert isinstance(rig.poller.strategy, FullStrategy) and rig.poller.strategy.probe
        rig.world.delete(rig.active())
        rig.source.client.budgets.clear()
        await rig.poll()
        budgets = rig.source.client.budgets
        assert len(budgets) > 3 and all(b is budgets[0] for b in budgets), strategy
        assert budgets[0] is not None


async def test_a_baseline_reports_per_queue_counts_and_applies_are_announced() -> None:
    rig = Rig(queues=("etl", "ml"), target=PolledQueue(None), jobs=30)
    logs = await rig.poll()
    baselines = {e["queue"]: e["counts"] for e in logs if e["event"] == "monitor.baseline"}
    assert baselines == {
        q: {s.value: n for s, n in rig.world.counts(q).items()} for q in ("etl", "ml")
    }
    assert rig.applied == [rig.poller]
    assert rig.sample("dli_monitor_last_success_timestamp_seconds", queue="*") == T0
    # A project-wide poll reports each job under its own queue, not "*".
    job = next(j for j in rig.world.jobs.values() if j.queue == "ml" and j.state is S.RUNNING)
    rig.world.set_state(job.id, S.SUCCESS)
    rig.clock.advance(30)
    changes = [e for e in await rig.poll() if e["event"] == "job.transition"]
    assert [(e["queue"], e["job_id"]) for e in changes] == [("ml", job.id)]
    assert (
        rig.sample(
            "dli_batch_job_transitions_total", queue="ml", from_state="running", to_state="success"
        )
        == 1
    )


async def test_without_update_time_the_poll_clock_times_a_state() -> None:
    rig = Rig()
    rig.source.rows_without_update_time = True
    await rig.poll()
    job = rig.active()
    rig.clock.advance(42)
    rig.world.set_state(job, S.DEAD)
    logs = await rig.poll()
    (change,) = [e for e in logs if e["event"] == "job.transition"]
    assert change["in_state_seconds"] == 42.0


def test_polls_start_on_a_fixed_grid_and_skip_the_slots_a_long_poll_missed() -> None:
    assert next_start(100.0, 100.0, 30.0) == 130.0
    assert next_start(100.0, 101.0, 30.0) == 130.0
    assert next_start(100.0, 130.0, 30.0) == 130.0
    assert next_start(100.0, 131.0, 30.0) == 160.0
    assert next_start(100.0, 195.0, 30.0) == 220.0


class Broken(FakeApi):
    """A list request that raises what no DLI error is (a bug), or never answers."""

    hang = False

    async def send(self, request: Request) -> Response:
        if self.hang:
            await anyio.sleep_forever()
        raise RuntimeError("boom")


@pytest.mark.parametrize(
    ("hang", "error", "code"),
    [
        (False, "internal error: RuntimeError: boom", "InternalError"),
        (True, "poll did not finish within 0.05 s", "PollTimeout"),
    ],
)
async def test_a_bug_or_a_wedged_poll_is_reported_and_the_loop_goes_on(
    hang: bool, error: str, code: str
) -> None:
    source = Broken(World("p1", ("etl",), now_ms=0))
    source.hang = hang
    rig = Rig(source=source)
    rig.poller.poll_timeout = 0.05
    rig.poller.interval = 0.01
    before = anyio.current_time()
    with capture_logs() as logs, anyio.move_on_after(1):
        while sum(e["event"] == "poll.failed" for e in logs) < 2:
            with anyio.move_on_after(0.3):
                await rig.poller.run()
    failed = [e for e in logs if e["event"] == "poll.failed"]
    assert len(failed) >= 2, "the loop went on after the first failure"
    assert {(e["error"], e["error_code"], e["attempt"], e["log_level"]) for e in failed} == {
        (error, code, 1, "warning")
    }
    assert rig.sample("dli_monitor_up", queue="etl") == 0
    assert rig.poller.heartbeat >= before


async def test_a_poll_loop_shows_it_is_alive_while_a_poll_runs() -> None:
    source = Broken(World("p1", ("etl",), now_ms=0))
    source.hang = True
    rig = Rig(source=source)
    rig.poller.poll_timeout = 30
    before = anyio.current_time()
    async with anyio.create_task_group() as tg:
        tg.start_soon(rig.poller.run)
        with anyio.fail_after(5):
            while not rig.poller.heartbeat:
                await anyio.sleep(0.001)
        assert rig.poller.heartbeat >= before, "the heartbeat is set as the poll starts"
        tg.cancel_scope.cancel()


async def test_a_poller_s_defaults() -> None:
    world = World("p1", ("etl",), seed=1, now_ms=int(T0 * 1000), initial_jobs=5)
    long = World("p1", ("etl",), seed=1, now_ms=int(T0 * 1000), initial_jobs=1200)
    full = QueuePoller(PolledQueue("etl"), FakeApi(long).client, output(), PollSettings(30))
    with capture_logs():
        await full.poll()
        await full.poll()
    assert isinstance(full.strategy, FullStrategy) and not full.strategy.probe, "full by default"
    source = FakeApi(world)
    poller = QueuePoller(PolledQueue("etl"), source.client, output(), PollSettings(30))
    assert poller.poll_timeout == 90
    assert (
        QueuePoller(PolledQueue("etl"), source.client, output(), PollSettings(1)).poll_timeout == 60
    )
    with capture_logs() as logs:
        await poller.poll()
    assert source.client.budget_sizes == [8], "8 retries a poll by default"
    # 5 jobs, nothing known: four pages in flight from the first request (three past the end),
    # and the one probe that shows the short page was the end, not a server's cap
    assert [(q["from"], q["size"]) for q in source.lists()] == [
        ("0", "100"), ("100", "100"), ("200", "100"), ("300", "100"), ("5", "100"),
    ]  # fmt: skip
    assert isinstance(poller.strategy, FullStrategy) and not poller.strategy.probe
    assert [e["event"] for e in logs] == ["monitor.baseline"], "no rows_rejected when none were"


async def test_a_poller_given_a_snapshot_resumes_from_it_without_a_baseline() -> None:
    rig = Rig()
    await rig.poll()
    snapshot = rig.poller.snapshot
    resumed = QueuePoller(
        PolledQueue("etl"), rig.source.client, output(), PollSettings(30, clock=rig.clock),
        snapshot=snapshot,
    )  # fmt: skip
    assert resumed.snapshot is snapshot
    with capture_logs() as logs:
        await resumed.poll()
    assert logs == []


async def test_odd_rows_are_counted_every_poll_and_logged_when_their_count_changes() -> None:
    rig = Rig(jobs=41)  # not a multiple of the page size: every pass ends on a short page
    rig.source.extra_rows = [{"state": "running"}, {"id": "x", "state": "QUEUED"}]
    logs = await rig.poll()
    rig.clock.advance(30)
    logs += await rig.poll()
    rejected = [e for e in logs if e["event"] == "poll.rows_rejected"]
    assert [(e["queue"], e["rejected"], e["unknown_state"]) for e in rejected] == [("etl", 1, 1)]
    assert rejected[0]["request_id"].startswith("rid-")
    assert rig.sample("dli_monitor_rejected_rows_total", queue="etl", reason="malformed") == 2
    assert rig.sample("dli_monitor_rejected_rows_total", queue="etl", reason="unknown_state") == 2


async def test_a_failed_poll_applies_nothing_and_says_so() -> None:
    from monitor.dli.errors import APIError

    rig = Rig()
    assert rig.sample("dli_monitor_up", queue="etl") == 0, "a new poller is not up yet"
    rig.source.failures = [APIError(500, "DLI.0999", "x")] * 20
    with capture_logs():
        assert await rig.poller.poll() is False
    assert rig.poller.snapshot is None and not rig.poller.ready
    rig.source.failures = []
    with capture_logs():
        assert await rig.poller.poll() is True
    assert rig.poller.ready


async def test_a_finished_job_the_api_no_longer_lists_is_forgotten_and_uncounted() -> None:
    rig = Rig()
    await rig.poll()
    finished = next(j for j in rig.world.jobs.values() if j.state is S.SUCCESS)
    rig.world.delete(finished.id)
    rig.clock.advance(30)
    assert job_events(await rig.poll()) == []
    snapshot = rig.poller.snapshot
    assert snapshot is not None and finished.id not in snapshot
    summary = rig.poller.summary
    assert summary is not None
    assert summary.counts.get(("etl", S.SUCCESS), 0) == rig.world.counts("etl")[S.SUCCESS]


async def test_a_project_wide_poller_exports_every_queue_it_meets_from_zero() -> None:
    rig = Rig(queues=("etl", "ml"), target=PolledQueue(None), jobs=20)
    await rig.poll()
    for queue in ("etl", "ml"):
        assert (
            rig.sample(
                "dli_batch_job_transitions_total",
                queue=queue,
                from_state="new",
                to_state="starting",
            )
            == 0
        )
