"""Terminal counts kept between recounts: only jobs seen finishing move them."""

from __future__ import annotations

from monitor.core.counts import KeptCounts, advance, terminal_counts
from monitor.core.jobs import Job, JobState
from monitor.core.snapshot import Change, Discovered, Forgotten, JobSnapshot, Transition, Vanished

S = JobState


def job(job_id: str, state: JobState, queue: str = "etl") -> Job:
    return Job(job_id, state, queue)


def moved(job_id: str, old: JobState, new: JobState, queue: str = "etl") -> Transition:
    return Transition(job(job_id, new, queue), old, new, False, 1.0, None)


def test_a_full_listing_s_snapshot_gives_the_terminal_counts_only() -> None:
    snapshot = JobSnapshot.baseline(
        [job("a", S.RUNNING), job("b", S.SUCCESS), job("c", S.DEAD, "ml"), job("d", S.SUCCESS)],
        now_ms=1,
    )
    assert terminal_counts(snapshot.summary) == {("etl", S.SUCCESS): 2, ("ml", S.DEAD): 1}


def test_jobs_seen_finishing_are_added_and_nothing_else_moves_a_count() -> None:
    kept = {("etl", S.SUCCESS): 10}
    changes: list[Change] = [
        moved("a", S.RUNNING, S.SUCCESS),
        moved("b", S.STARTING, S.DEAD, "ml"),
        moved("c", S.STARTING, S.RUNNING),
        moved("d", S.RUNNING, S.RECOVERING),
        Discovered(job("e", S.SUCCESS)),
        Discovered(job("f", S.RUNNING)),
        Vanished(job("g", S.RUNNING), S.RUNNING),
        Forgotten(job("h", S.RUNNING), S.RUNNING, 3600.0),
    ]
    assert advance(kept, changes) == {("etl", S.SUCCESS): 12, ("ml", S.DEAD): 1}
    assert kept == {("etl", S.SUCCESS): 10}, "a new mapping: the last count is never changed"


def test_kept_counts_start_from_a_full_listing_move_with_changes_and_are_recounted() -> None:
    listing = JobSnapshot.baseline(
        [job("a", S.RUNNING), job("b", S.SUCCESS), job("c", S.DEAD)], now_ms=1
    ).summary
    kept = KeptCounts()
    assert kept.due(now=0.0, interval=600) and kept.summary(listing) is listing
    kept.listed_everything(now=100.0)
    assert not kept.due(now=699.0, interval=600) and kept.due(now=700.0, interval=600)
    kept.observed(listing, [moved("a", S.RUNNING, S.SUCCESS)])
    # the snapshot of incremental polls no longer holds the history: the kept counts do
    later = JobSnapshot.baseline([], now_ms=2).summary
    assert kept.summary(later).counts == {("etl", S.SUCCESS): 2, ("etl", S.DEAD): 1}
    assert kept.summary(later) is kept.summary(later), "made once per change"
    kept.recounted("etl", {S.SUCCESS: 1, S.DEAD: 0}, now=200.0)
    assert kept.summary(later).counts == {("etl", S.SUCCESS): 1}
    assert kept.counted_at == 200.0 and kept.counts == {("etl", S.SUCCESS): 1, ("etl", S.DEAD): 0}
