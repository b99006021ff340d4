"""The level series read from the pollers' summaries at each exposition: dli_batch_jobs, the
oldest age per active state, and the tracked jobs, summed per scope."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from monitor.core.jobs import JobState
from monitor.core.snapshot import StateSummary
from monitor.output.levels import LevelSeries
from monitor.output.scope import Scope
from tests.fakes import FakeClock

S = JobState


@dataclass
class View:
    scope: Scope
    summary: StateSummary | None
    tracked_jobs: int = 0
    export_queues: Iterable[str] = field(default_factory=tuple)


def test_levels_are_the_summaries_of_every_view_each_queue_and_state_exported() -> None:
    clock = FakeClock(1_000.0)
    levels = LevelSeries(clock)
    p1, p2 = Scope("p1", "r"), Scope("p2")
    etl = StateSummary({("etl", S.RUNNING): 2, ("etl", S.DEAD): 5}, {("etl", S.RUNNING): 940_000})
    ml = StateSummary({("ml", S.STARTING): 1}, {("ml", S.STARTING): 1_002_000})  # clock skew
    views = [
        View(p1, etl, tracked_jobs=7, export_queues=("etl",)),
        View(p1, ml, tracked_jobs=1, export_queues=("ml",)),
        View(p2, None, tracked_jobs=0, export_queues=("adhoc",)),  # not polled yet
    ]
    levels.add_views(lambda: views)
    levels.refresh()
    got = {f.name: {tuple(s.labels.values()): s.value for s in f.collect().samples}
           for f in levels.families}  # fmt: skip
    jobs = got["dli_batch_jobs"]
    assert len(jobs) == 3 * len(JobState), "every state of every exported queue, zero included"
    assert jobs[("p1", "r", "etl", "running")] == 2
    assert jobs[("p1", "r", "etl", "dead")] == 5
    assert jobs[("p1", "r", "ml", "starting")] == 1
    assert jobs[("p1", "r", "ml", "success")] == 0
    assert jobs[("p2", "", "adhoc", "running")] == 0
    oldest = got["dli_batch_job_oldest_age_seconds"]
    assert len(oldest) == 3 * 3, "active states only"
    assert oldest[("p1", "r", "etl", "running")] == 60.0
    assert oldest[("p1", "r", "ml", "starting")] == 0.0, "never negative"
    assert oldest[("p1", "r", "etl", "starting")] == 0.0, "none: 0"
    assert got["dli_monitor_tracked_jobs"] == {("p1", "r"): 8, ("p2", ""): 0}


def test_a_project_wide_view_exports_the_queues_its_summary_meets() -> None:
    levels = LevelSeries(FakeClock(0.0))
    summary = StateSummary({("etl", S.SUCCESS): 3, ("ml", S.DEAD): 1}, {})
    levels.add_views(lambda: [View(Scope("p"), summary, tracked_jobs=4)])
    levels.refresh()
    jobs = {tuple(s.labels.values()): s.value for s in levels.jobs.collect().samples}
    assert {key[2] for key in jobs} == {"etl", "ml"}
    assert jobs[("p", "", "etl", "success")] == 3 and jobs[("p", "", "ml", "dead")] == 1


def test_a_queue_poller_exports_its_queue_and_any_its_summary_meets() -> None:
    levels = LevelSeries(FakeClock(0.0))
    summary = StateSummary({("ml", S.RUNNING): 1}, {})  # a detail put a job in another queue
    levels.add_views(lambda: [View(Scope("p"), summary, export_queues=("etl",))])
    levels.refresh()
    jobs = {tuple(s.labels.values()): s.value for s in levels.jobs.collect().samples}
    assert {key[2] for key in jobs} == {"etl", "ml"}
