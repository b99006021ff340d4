"""The pure snapshot diff: examples for each rule, and properties over random job histories."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.core.jobs import Job, JobState
from monitor.core.snapshot import (
    DIRECT_EDGES,
    UNCONFIRMED_TTL_MS,
    Discovered,
    Forgotten,
    JobSnapshot,
    Observation,
    Transition,
    Vanished,
    is_forward,
)
from monitor.core.tracked import FinishedJob

S = JobState
T0 = 1_700_000_000_000


def job(job_id: str, state: JobState, **kw: object) -> Job:
    return Job(id=job_id, state=state, queue="q", **kw)  # type: ignore[arg-type]


def listing(*jobs: Job) -> dict[str, Job]:
    return {j.id: j for j in jobs}


def test_baseline_reports_nothing_and_counts_everything() -> None:
    snap = JobSnapshot.baseline([job("a", S.RUNNING), job("b", S.SUCCESS)], now_ms=T0)
    assert len(snap) == 2
    assert snap.summary.counts == {("q", S.RUNNING): 1, ("q", S.SUCCESS): 1}


def test_new_job_is_discovered_in_whatever_state_it_is_found() -> None:
    snap = JobSnapshot.baseline([], now_ms=T0)
    diff = snap.diff(Observation(listing(job("a", S.SUCCESS))), now_ms=T0 + 1)
    assert diff.changes == [Discovered(job("a", S.SUCCESS))]


def test_transition_uses_api_timestamps_and_flags_skips() -> None:
    start = job("a", S.STARTING, create_time=T0, update_time=T0)
    snap = JobSnapshot.baseline([start], now_ms=T0 + 500)
    done = job("a", S.SUCCESS, create_time=T0, update_time=T0 + 9000, duration_ms=8000)
    (change,) = snap.diff(Observation(listing(done)), now_ms=T0 + 20_000).changes
    assert isinstance(change, Transition)
    assert (change.from_state, change.to_state) == (S.STARTING, S.SUCCESS)
    assert change.skipped is True
    assert change.in_state_seconds == 9.0
    assert change.duration_ms == 8000


def test_direct_edge_is_not_skipped_and_poll_time_is_the_fallback_clock() -> None:
    snap = JobSnapshot.baseline([job("a", S.STARTING)], now_ms=T0)
    (change,) = snap.diff(Observation(listing(job("a", S.RUNNING))), now_ms=T0 + 4000).changes
    assert isinstance(change, Transition)
    assert change.skipped is False
    assert change.in_state_seconds == 4.0


def test_terminal_is_final_and_backward_moves_are_ignored() -> None:
    snap = JobSnapshot.baseline([job("a", S.SUCCESS), job("b", S.RUNNING)], now_ms=T0)
    stale = Observation(listing(job("a", S.RUNNING), job("b", S.STARTING)))
    assert snap.diff(stale, now_ms=T0 + 1).changes == []


def test_missing_active_job_is_kept_until_confirmed_gone() -> None:
    snap = JobSnapshot.baseline([job("a", S.RUNNING)], now_ms=T0)
    assert snap.missing({}) == [snap.get("a")]
    unconfirmed = snap.diff(Observation({}), now_ms=T0 + 1)
    assert unconfirmed.changes == []
    assert "a" in unconfirmed.snapshot
    gone = snap.diff(Observation({}, gone=frozenset({"a"})), now_ms=T0 + 1)
    assert gone.changes == [Vanished(job("a", S.RUNNING), S.RUNNING)]
    assert "a" not in gone.snapshot


def test_a_job_that_vanishes_is_described_by_its_last_reading() -> None:
    """No fresh reading comes with a vanished or forgotten job: the event needs what was kept."""
    seen = job("a", S.RUNNING, name="n", owner="o", app_id="app", kind="k", sc_type="A",
               create_time=T0 - 5, update_time=T0 - 1, duration_ms=4)  # fmt: skip
    snap = JobSnapshot.baseline([seen], now_ms=T0)
    (gone,) = snap.diff(Observation({}, gone=frozenset({"a"})), now_ms=T0 + 1).changes
    assert isinstance(gone, Vanished)
    # update time and duration belong to a transition, which has the fresh reading
    assert gone.job == msgspec.structs.replace(seen, update_time=None, duration_ms=None)
    missing = snap.diff(Observation({}), now_ms=T0 + 1).snapshot
    (forgotten,) = missing.diff(Observation({}), now_ms=T0 + 1 + UNCONFIRMED_TTL_MS).changes
    assert isinstance(forgotten, Forgotten)
    assert forgotten.job == gone.job


def test_confirmed_detail_reports_the_transition() -> None:
    snap = JobSnapshot.baseline([job("a", S.RUNNING)], now_ms=T0)
    diff = snap.diff(Observation({}, confirmed=listing(job("a", S.DEAD))), now_ms=T0 + 1)
    assert [(c.from_state, c.to_state) for c in diff.changes if isinstance(c, Transition)] == [
        (S.RUNNING, S.DEAD)
    ]


def test_finished_job_forgotten_silently_and_not_rediscovered_after_churn() -> None:
    snap = JobSnapshot.baseline([job("a", S.SUCCESS)], now_ms=T0)
    incomplete = snap.diff(Observation({}, complete=False), now_ms=T0 + 1)
    assert "a" in incomplete.snapshot, "an incomplete listing must not forget anything"
    forgotten = snap.diff(Observation({}), now_ms=T0 + 1)
    assert forgotten.changes == [] and "a" not in forgotten.snapshot
    back = forgotten.snapshot.diff(Observation(listing(job("a", S.SUCCESS))), now_ms=T0 + 2)
    assert back.changes == [], "a job hidden by paging churn once is not new"
    assert "a" in back.snapshot, "and it is counted again while the API lists it"
    assert "a" not in back.snapshot.tombstones


def test_repeated_recovery_cycles_are_numbered() -> None:
    snap = JobSnapshot.baseline([job("a", S.RUNNING)], now_ms=T0)
    occurrences = []
    for i, state in enumerate([S.RECOVERING, S.RUNNING, S.RECOVERING, S.RUNNING]):
        diff = snap.diff(Observation(listing(job("a", state))), now_ms=T0 + i + 1)
        (change,) = diff.changes
        assert isinstance(change, Transition)
        occurrences.append(change.occurrence)
        snap = diff.snapshot
    assert occurrences == [1, 1, 2, 2]


def test_snapshot_is_never_modified_by_diff() -> None:
    snap = JobSnapshot.baseline([job("a", S.STARTING)], now_ms=T0)
    snap.diff(Observation(listing(job("a", S.RUNNING), job("b", S.STARTING))), now_ms=T0 + 1)
    assert snap.get("a") is not None and snap.get("a").state is S.STARTING  # type: ignore[union-attr]
    assert "b" not in snap


# -- properties ---------------------------------------------------------------------------

NEXT = {s: sorted({b for a, b in DIRECT_EDGES if a is s}) for s in JobState}


@st.composite
def trajectory(draw: st.DrawFn) -> list[JobState]:
    """A real life of one job along the lifecycle's edges."""
    state = draw(st.sampled_from([S.STARTING, S.RUNNING, S.RECOVERING]))
    path = [state]
    while NEXT[state] and len(path) < 8 and draw(st.booleans()):
        state = draw(st.sampled_from(NEXT[state]))
        path.append(state)
    return path


@st.composite
def histories(draw: st.DrawFn) -> tuple[dict[str, list[JobState]], list[dict[str, int]]]:
    """Job lives, and a sequence of polls: at each, how far along its life each visible job is.

    Polls sample lives at random (a poll may miss intermediate states) but never go backwards.
    """
    lives = {f"j{i}": draw(trajectory()) for i in range(draw(st.integers(1, 6)))}
    steps = draw(st.integers(1, 8))
    appear = {jid: draw(st.integers(0, steps - 1)) for jid in lives}
    position = dict.fromkeys(lives, 0)
    polls = []
    for step in range(steps):
        poll = {}
        for jid, life in lives.items():
            if step >= appear[jid]:
                position[jid] = draw(st.integers(position[jid], len(life) - 1))
                poll[jid] = position[jid]
        polls.append(poll)
    return lives, polls


@settings(max_examples=300, deadline=None)
@given(histories())
def test_diffs_reproduce_the_listing_and_report_each_change_once_in_order(
    history: tuple[dict[str, list[JobState]], list[dict[str, int]]],
) -> None:
    lives, polls = history
    first = {jid: job(jid, lives[jid][pos]) for jid, pos in polls[0].items()}
    snap = JobSnapshot.baseline(first.values(), now_ms=T0)
    reported: dict[str, list[JobState]] = {jid: [j.state] for jid, j in first.items()}
    for step, poll in enumerate(polls[1:], start=1):
        listed = {jid: job(jid, lives[jid][pos]) for jid, pos in poll.items()}
        diff = snap.diff(Observation(listed), now_ms=T0 + step * 1000)
        for change in diff.changes:
            if isinstance(change, Discovered):
                assert change.job.id not in reported, "discovered twice"
                reported[change.job.id] = [change.job.state]
            elif isinstance(change, Transition):
                assert is_forward(change.from_state, change.to_state)
                assert reported[change.job.id][-1] is change.from_state
                reported[change.job.id].append(change.to_state)
            else:
                raise AssertionError(f"nothing vanished, yet {change}")
        snap = diff.snapshot
        # The snapshot now says exactly what the listing said.
        assert {jid: t.state for jid, t in snap.items()} == {
            jid: j.state for jid, j in listed.items()
        }
        # and its summary counts what it holds, however the counts were kept along the way
        assert snap.summary.counts == Counter((t.queue, t.state) for t in snap.values())
    for jid, states in reported.items():
        life = lives[jid]
        # What was reported is an in-order subsequence of the real life, with no repeats.
        it = iter(life)
        assert all(any(s is x for x in it) for s in states), (states, life)
        assert all(a is not b for a, b in pairwise(states))


@settings(max_examples=200, deadline=None)
@given(histories(), st.randoms(use_true_random=False))
def test_a_missed_listing_never_invents_or_loses_a_change(
    history: tuple[dict[str, list[JobState]], list[dict[str, int]]], rnd: object
) -> None:
    """Dropping rows from listings (paging churn) only delays reports; unconfirmed jobs wait."""
    import random

    assert isinstance(rnd, random.Random)
    lives, polls = history
    snap = JobSnapshot.baseline([], now_ms=T0)
    seen: dict[str, list[JobState]] = {}
    for step, poll in enumerate(polls, start=1):
        full = {jid: job(jid, lives[jid][pos]) for jid, pos in poll.items()}
        shown = {jid: j for jid, j in full.items() if rnd.random() < 0.7}
        diff = snap.diff(Observation(shown, complete=False), now_ms=T0 + step)
        for change in diff.changes:
            assert isinstance(change, Discovered | Transition)
            states = seen.setdefault(change.job.id, [])
            states.append(change.job.state if isinstance(change, Discovered) else change.to_state)
        snap = diff.snapshot
    # A final complete listing catches every job up to its true current state.
    final = {jid: job(jid, lives[jid][pos]) for jid, pos in polls[-1].items()}
    diff = snap.diff(Observation(final), now_ms=T0 + 10_000)
    for change in diff.changes:
        assert isinstance(change, Discovered | Transition)
        states = seen.setdefault(change.job.id, [])
        states.append(change.job.state if isinstance(change, Discovered) else change.to_state)
    for jid, j in final.items():
        assert seen[jid][-1] is j.state
        # Never the same state twice in a row, and only running/recovering ever come back.
        assert all(a is not b for a, b in pairwise(seen[jid]))
        once = [s for s in seen[jid] if s not in (S.RUNNING, S.RECOVERING)]
        assert len(once) == len(set(once))


def test_replace_keeps_records_hashable() -> None:
    a = job("a", S.RUNNING)
    assert msgspec.structs.replace(a, state=S.DEAD) != a
    assert hash(a) == hash(job("a", S.RUNNING))


def test_a_terminal_state_is_final_even_towards_the_other_terminal_state() -> None:
    snap = JobSnapshot.baseline([job("a", S.SUCCESS), job("b", S.DEAD)], now_ms=T0)
    swapped = Observation(listing(job("a", S.DEAD), job("b", S.SUCCESS)))
    diff = snap.diff(swapped, now_ms=T0 + 1)
    assert diff.changes == []
    assert diff.snapshot.get("a").state is S.SUCCESS  # type: ignore[union-attr]


@given(st.lists(st.sampled_from(list(S)), min_size=1, max_size=8))
def test_nothing_is_reported_for_a_job_after_its_terminal_state(later: list[JobState]) -> None:
    snap = JobSnapshot.baseline([job("a", S.RUNNING)], now_ms=T0)
    snap = snap.diff(Observation(listing(job("a", S.DEAD))), now_ms=T0 + 1).snapshot
    for i, state in enumerate(later):
        diff = snap.diff(Observation(listing(job("a", state)), complete=False), now_ms=T0 + 2 + i)
        assert diff.changes == []
        snap = diff.snapshot


def test_an_unconfirmed_active_job_is_forgotten_after_the_ttl_and_not_before() -> None:
    snap = JobSnapshot.baseline([job("a", S.RUNNING)], now_ms=T0)
    first = snap.diff(Observation({}), now_ms=T0 + 1)
    assert first.changes == [] and first.snapshot.get("a").missing_since_ms == T0 + 1  # type: ignore[union-attr]
    almost = first.snapshot.diff(Observation({}), now_ms=T0 + UNCONFIRMED_TTL_MS)
    assert almost.changes == [] and "a" in almost.snapshot
    gone = almost.snapshot.diff(Observation({}), now_ms=T0 + 1 + UNCONFIRMED_TTL_MS)
    assert gone.changes == [Forgotten(job("a", S.RUNNING), S.RUNNING, UNCONFIRMED_TTL_MS / 1000)]
    assert "a" not in gone.snapshot


def test_a_missing_job_seen_again_starts_its_ttl_afresh() -> None:
    snap = JobSnapshot.baseline([job("a", S.RUNNING)], now_ms=T0)
    snap = snap.diff(Observation({}), now_ms=T0 + 1).snapshot
    back = snap.diff(Observation(listing(job("a", S.RUNNING))), now_ms=T0 + 2).snapshot
    assert back.get("a").missing_since_ms is None  # type: ignore[union-attr]
    later = back.diff(Observation({}), now_ms=T0 + UNCONFIRMED_TTL_MS).snapshot
    assert later.diff(Observation({}), now_ms=T0 + UNCONFIRMED_TTL_MS + 2).changes == []


def test_tombstones_expire_so_memory_stays_bounded() -> None:
    snap = JobSnapshot.baseline([job("a", S.SUCCESS)], now_ms=T0)
    forgotten = snap.diff(Observation({}), now_ms=T0 + 1).snapshot
    assert "a" in forgotten.tombstones
    kept = forgotten.diff(Observation({}), now_ms=T0 + 3_599_999, tombstone_ttl_ms=3_600_000)
    assert "a" in kept.snapshot.tombstones
    expired = forgotten.diff(Observation({}), now_ms=T0 + 3_600_002, tombstone_ttl_ms=3_600_000)
    assert "a" not in expired.snapshot.tombstones


def test_history_before_the_horizon_is_counted_never_discovered() -> None:
    snap = JobSnapshot.baseline([], now_ms=T0, horizon_ms=T0)
    old = job("old", S.SUCCESS, create_time=T0 - 10)
    new = job("new", S.SUCCESS, create_time=T0 + 10)
    active_old = job("act", S.RUNNING, create_time=T0 - 10)
    diff = snap.diff(Observation(listing(old, new, active_old)), now_ms=T0 + 20)
    assert {c.job.id for c in diff.changes} == {"new", "act"}
    assert {"old", "new", "act"} <= diff.snapshot.keys()
    # Forgotten history needs no tombstone.
    assert "old" not in diff.snapshot.diff(Observation({}), now_ms=T0 + 30).snapshot.tombstones


def test_kept_counts_replace_every_terminal_count_and_no_active_one() -> None:
    jobs = [job("a", S.RUNNING), job("b", S.SUCCESS), job("c", S.DEAD)]
    summary = JobSnapshot.baseline(jobs, now_ms=T0).summary
    replaced = summary.with_terminal_counts({("q", S.SUCCESS): 900, ("q", S.RUNNING): 7})
    # dead is not in the kept counts: none are counted, whatever the snapshot still holds
    assert replaced.counts == {("q", S.RUNNING): 7, ("q", S.SUCCESS): 900}
    assert summary.with_terminal_counts({}).counts == {("q", S.RUNNING): 1}
    assert replaced.oldest_since_ms == summary.oldest_since_ms


def test_the_oldest_active_job_of_each_state_is_remembered_and_only_for_active_states() -> None:
    jobs = [
        job("b", S.RUNNING, update_time=T0 - 900),
        job("a", S.RUNNING, update_time=T0 - 500),
        job("c", S.RUNNING, update_time=T0 - 700),
        job("d", S.SUCCESS, update_time=T0 - 5000),
        job("e", S.STARTING, update_time=T0 - 10),
    ]
    summary = JobSnapshot.baseline(jobs, now_ms=T0).summary
    assert summary.oldest_since_ms == {("q", S.RUNNING): T0 - 900, ("q", S.STARTING): T0 - 10}


def test_forward_moves_are_exactly_the_lifecycle_s() -> None:
    forward = {(old, new) for old in S for new in S if is_forward(old, new)}
    assert forward == {
        (S.STARTING, S.RUNNING), (S.STARTING, S.RECOVERING), (S.STARTING, S.SUCCESS),
        (S.STARTING, S.DEAD), (S.RUNNING, S.RECOVERING), (S.RUNNING, S.SUCCESS),
        (S.RUNNING, S.DEAD), (S.RECOVERING, S.RUNNING), (S.RECOVERING, S.SUCCESS),
        (S.RECOVERING, S.DEAD),
    }  # fmt: skip


def test_a_job_created_exactly_at_the_horizon_is_new_not_history() -> None:
    snap = JobSnapshot.baseline([], now_ms=T0, horizon_ms=T0)
    at = job("at", S.SUCCESS, create_time=T0)
    assert [c.job.id for c in snap.diff(Observation(listing(at)), now_ms=T0 + 1).changes] == ["at"]


def test_a_diff_moves_the_horizon_forward_only() -> None:
    snap = JobSnapshot.baseline([], now_ms=T0)
    assert snap.diff(Observation({}, history_before_ms=0), now_ms=T0).snapshot.horizon_ms == 0
    later = snap.diff(Observation({}, history_before_ms=T0 - 5), now_ms=T0).snapshot
    assert later.horizon_ms == T0 - 5
    kept = later.diff(Observation({}, history_before_ms=T0 - 50), now_ms=T0 + 1).snapshot
    assert kept.horizon_ms == T0 - 5
    assert kept.diff(Observation({}), now_ms=T0 + 2).snapshot.horizon_ms == T0 - 5


def test_a_tombstone_lasts_exactly_its_default_ttl() -> None:
    snap = JobSnapshot.baseline([job("a", S.SUCCESS)], now_ms=T0)
    gone = snap.diff(Observation({}), now_ms=T0).snapshot
    assert "a" in gone.diff(Observation({}), now_ms=T0 + 3_599_999).snapshot.tombstones
    assert "a" not in gone.diff(Observation({}), now_ms=T0 + 3_600_000).snapshot.tombstones


def test_a_job_back_from_a_tombstone_is_tracked_afresh_and_others_still_diffed() -> None:
    snap = JobSnapshot.baseline([job("a", S.SUCCESS)], now_ms=T0)
    gone = snap.diff(Observation({}), now_ms=T0 + 1).snapshot
    back = gone.diff(Observation(listing(job("a", S.SUCCESS), job("b", S.STARTING))), now_ms=T0 + 2)
    assert back.changes == [Discovered(job("b", S.STARTING))]
    assert back.snapshot.get("a") == FinishedJob(S.SUCCESS, "q")
    assert back.snapshot.summary.counts == {("q", S.SUCCESS): 1, ("q", S.STARTING): 1}


def test_time_in_state_and_run_time_from_the_api_s_timestamps_to_the_millisecond() -> None:
    start = job("a", S.STARTING, create_time=T0 - 1000, update_time=T0)
    snap = JobSnapshot.baseline([start], now_ms=T0 + 5)
    same_instant = job("a", S.RUNNING, create_time=T0 - 1000, update_time=T0)
    (change,) = snap.diff(Observation(listing(same_instant)), now_ms=T0 + 9000).changes
    assert isinstance(change, Transition)
    assert change.in_state_seconds == 0.0, "the API's update_time, not the poll time"
    assert change.duration_ms == 1000, "no duration field: update_time - create_time"
    assert change.occurrence == 1


def test_only_recovery_cycles_count_occurrences() -> None:
    snap = JobSnapshot.baseline([job("a", S.RUNNING)], now_ms=T0)
    occurrences = []
    for i, state in enumerate([S.RECOVERING, S.RUNNING, S.RECOVERING, S.RUNNING, S.SUCCESS]):
        diff = snap.diff(Observation(listing(job("a", state))), now_ms=T0 + i + 1)
        (change,) = diff.changes
        assert isinstance(change, Transition)
        occurrences.append(change.occurrence)
        snap = diff.snapshot
    assert occurrences == [1, 1, 2, 2, 1]


def test_a_run_time_is_never_negative_and_zero_when_it_ended_where_it_began() -> None:
    snap = JobSnapshot.baseline([job("a", S.STARTING, create_time=T0, update_time=T0)], now_ms=T0)
    instant = job("a", S.DEAD, create_time=T0, update_time=T0)
    (change,) = snap.diff(Observation(listing(instant)), now_ms=T0 + 50).changes
    assert isinstance(change, Transition) and change.duration_ms == 0


def test_a_baseline_job_starts_its_clock_from_the_api_and_counts_a_recovery_in_progress() -> None:
    starting = job("s", S.STARTING, create_time=T0 - 700)
    recovering = job("r", S.RECOVERING, update_time=T0 - 100)
    snap = JobSnapshot.baseline([starting, recovering], now_ms=T0)
    assert snap.get("s").since_ms == T0 - 700  # type: ignore[union-attr]
    assert snap.get("r").recoveries == 1  # type: ignore[union-attr]
    assert JobSnapshot.baseline([job("n", S.RUNNING)], now_ms=T0).get("n").recoveries == 0  # type: ignore[union-attr]
    for state in (S.RUNNING, S.RECOVERING):
        diff = snap.diff(Observation(listing(starting, job("r", state))), now_ms=T0 + 1)
        snap = diff.snapshot
    (change,) = diff.changes
    assert isinstance(change, Transition) and change.occurrence == 2


def test_a_snapshot_equals_itself_only() -> None:
    """A snapshot is a value in time: two with the same records are still two snapshots."""
    snap = JobSnapshot.baseline([job("a", S.RUNNING)], now_ms=T0)
    same = JobSnapshot.baseline([job("a", S.RUNNING)], now_ms=T0)
    assert snap == snap  # noqa: PLR0124 (the point)
    assert snap != same and dict(snap) == dict(same)


def test_finished_jobs_listed_as_their_records_are_seen_and_kept() -> None:
    done, live = job("d", S.SUCCESS), job("r", S.RUNNING)
    snap = JobSnapshot.baseline([live], now_ms=T0, finished={"d": FinishedJob.of(done)})
    assert set(snap) == {"d", "r"} and snap.summary.counts[("q", S.SUCCESS)] == 1
    record = snap.finished_record("d")
    assert record is not None and snap.finished_record("r") is None
    # A complete listing that shows "d" only as the snapshot's own record forgets nothing.
    diff = snap.diff(Observation(listing(live), finished={"d": record}), now_ms=T0 + 1)
    assert diff.changes == [] and "d" in diff.snapshot
    assert "d" not in diff.snapshot.diff(Observation(listing(live)), now_ms=T0 + 2).snapshot
