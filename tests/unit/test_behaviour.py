"""What the API is seen to do, and what that allows: pure rules, tested one by one."""

from __future__ import annotations

import pytest

from monitor.core.behaviour import ApiBehaviour, BehaviourBook, PassFacts, Seen, TotalMeaning
from monitor.core.jobs import JobState
from monitor.dli.errors import APIError, RequestTimeout, is_gone
from monitor.poll.paging import Pass
from monitor.poll.strategy import (
    AUTO_INCREMENTAL_AFTER,
    PollResult,
    choose,
    incremental_usable,
)

S = JobState
T = TotalMeaning
KNOWN = ApiBehaviour(total=T.FILTERED, state_filter=Seen.HONOURED, queue_filter=Seen.HONOURED)


def settled(total: int | None, rows: int, state: JobState | None = None, **kw: object) -> PassFacts:
    return PassFacts(
        filtered_state=state,
        filtered_queue=True,
        totals=frozenset({total}),
        rows=rows,
        settled=True,
        **kw,  # type: ignore[arg-type]
    )


def test_everything_starts_unknown_and_blocks_nothing() -> None:
    fresh = ApiBehaviour()
    assert fresh.labels() == {
        "total": "unknown",
        "order": "unknown",
        "state_filter": "unknown",
        "time_filter": "unknown",
        "queue_filter": "unknown",
        "spelling": "lower",
    }
    assert fresh.incremental_blocker() is None
    assert not fresh.pages_by_total and not fresh.counts_by_total


def test_total_matching_the_rows_may_bound_paging_but_not_yet_count() -> None:
    seen = ApiBehaviour().learn([settled(40, 40)])
    assert seen.total is T.MATCHES_ROWS
    assert seen.pages_by_total and not seen.counts_by_total


def test_total_is_filtered_once_it_differs_between_state_filters() -> None:
    same = ApiBehaviour().learn([settled(7, 7, S.RUNNING), settled(7, 7, S.STARTING)])
    assert same.total is T.MATCHES_ROWS, "equal totals could be one count of everything"
    differ = ApiBehaviour().learn([settled(7, 7, S.RUNNING), settled(2, 2, S.STARTING)])
    assert differ.total is T.FILTERED and differ.counts_by_total


def test_total_is_filtered_once_a_state_count_is_below_the_queue_listing() -> None:
    queue = settled(50, 50)
    assert ApiBehaviour().learn([queue, settled(9, 9, S.SUCCESS)]).total is T.FILTERED
    assert ApiBehaviour().learn([queue, settled(50, 50, S.SUCCESS)]).total is T.MATCHES_ROWS


def test_total_counting_more_than_the_rows_is_unfiltered_and_sticks() -> None:
    livy = ApiBehaviour().learn([settled(300, 40)])
    assert livy.total is T.UNFILTERED
    assert not livy.pages_by_total and not livy.counts_by_total
    # Incremental polls count nothing from total: a Livy-like API does not rule them out.
    assert livy.incremental_blocker() is None
    # A later listing whose total matches (one queue that holds the whole project) cannot tell
    # the two apart: the verdict stays, where it used to flip with every other poll.
    assert livy.learn([settled(41, 41)]).total is T.UNFILTERED
    # Contrary evidence from probes does move it: two state filters, each total its own rows.
    probes = [settled(30, 30, S.SUCCESS), settled(10, 10, S.DEAD)]
    assert livy.learn(probes).total is T.FILTERED


def test_no_evidence_from_a_pass_that_moved_or_has_no_total() -> None:
    moved = PassFacts(totals=frozenset({40, 41}), rows=40, settled=True)
    unsettled = PassFacts(totals=frozenset({40}), rows=30, settled=False)
    assert ApiBehaviour().learn([moved, unsettled]).total is T.UNKNOWN
    missing = ApiBehaviour().learn([PassFacts(totals=frozenset({None}), rows=3, settled=True)])
    assert missing.total is T.MISSING and missing.incremental_blocker() is None
    assert KNOWN.learn([unsettled]).total is T.FILTERED


@pytest.mark.parametrize(
    ("facts", "field", "blocker"),
    [
        (settled(3, 3, S.RUNNING, foreign_state=True), "state_filter", "state filter"),
        # rows of other queues are dropped from every listing: no blocker, only costlier
        (settled(3, 3, foreign_queue=True), "queue_filter", None),
    ],
)
def test_a_row_outside_a_filter_marks_it_ignored_for_good(
    facts: PassFacts, field: str, blocker: str | None
) -> None:
    ignored = KNOWN.learn([facts])
    assert getattr(ignored, field) is Seen.IGNORED
    if blocker is None:
        assert ignored.incremental_blocker() is None
    else:
        assert blocker in (ignored.incremental_blocker() or "")
    again = ignored.learn([settled(3, 3, S.RUNNING)])
    assert getattr(again, field) is Seen.IGNORED, "ignored once, it may be ignored again"
    assert not ignored.counts_by_total or field != "state_filter"


def test_filters_are_honoured_only_on_rows_that_came_back() -> None:
    empty = ApiBehaviour().learn([settled(0, 0, S.RUNNING)])
    assert empty.state_filter is Seen.UNKNOWN and empty.queue_filter is Seen.UNKNOWN
    some = ApiBehaviour().learn([settled(2, 2, S.RUNNING)])
    assert some.state_filter is Seen.HONOURED and some.queue_filter is Seen.HONOURED


def test_start_and_order_block_incremental_only_together() -> None:
    start = PassFacts(filtered_start=True, rows=5, foreign_start=True)
    order = PassFacts(order_checked=True, order_broken=True)
    assert ApiBehaviour().learn([start]).time_filter is Seen.IGNORED
    assert ApiBehaviour().learn([start]).incremental_blocker() is None
    assert ApiBehaviour().learn([order]).order is Seen.IGNORED
    both = ApiBehaviour().learn([start, order])
    assert "start and order" in (both.incremental_blocker() or "")
    held = ApiBehaviour().learn([PassFacts(order_checked=True)])
    assert held.order is Seen.HONOURED


def test_the_first_odd_spelling_is_kept_and_described() -> None:
    seen = ApiBehaviour().learn([PassFacts(spelling="Running"), PassFacts(spelling="DEAD")])
    assert seen.spelling == "Running" and seen.labels()["spelling"] == "Running"
    assert "states spelt like 'Running'" in seen.describe()
    assert "states in lower case" in ApiBehaviour().describe()


def test_describe_names_every_open_point() -> None:
    text = KNOWN.describe()
    assert text.startswith("total counts filtered rows; order unknown; state filter honoured")
    assert "start filter unknown" in text and "queue filter honoured" in text


def test_the_book_tells_of_each_change_once() -> None:
    told: list[ApiBehaviour] = []
    book = BehaviourBook(told.append)
    book.learn([settled(10, 10)])
    book.learn([settled(10, 10)])
    book.learn([settled(30, 10)])
    assert [b.total for b in told] == [T.MATCHES_ROWS, T.UNFILTERED]
    assert book.current.total is T.UNFILTERED


def test_only_the_documented_code_means_gone() -> None:
    assert is_gone(APIError(400, "DLI.0002", "The object does not exist."))
    assert is_gone(APIError(404, "DLI.0002", ""))
    assert not is_gone(APIError(404, "", ""))
    assert not is_gone(APIError(400, "DLI.0001", "Parameter check errors occur"))
    assert not is_gone(RequestTimeout("slow"))


# -- choosing a strategy ---------------------------------------------------------------------


def gathered(totals: dict[JobState, int], *facts: PassFacts) -> PollResult:
    return PollResult(Pass(facts=list(facts)), totals=totals)


BOTH = {S.SUCCESS: 5, S.DEAD: 2}


def test_an_incremental_poll_is_usable_only_when_everything_it_relies_on_was_seen() -> None:
    assert incremental_usable(gathered(BOTH), KNOWN, counted=True) is None
    assert incremental_usable(gathered(BOTH), ApiBehaviour(), counted=True) == (
        "total is not yet shown to count the rows a state filter selects"
    )
    assert incremental_usable(gathered({S.SUCCESS: 5}), KNOWN, counted=True) == (
        "a terminal-state count came without a total"
    )
    foreign = gathered(BOTH, PassFacts(foreign_state=True))
    assert incremental_usable(foreign, KNOWN, counted=False) == (
        "a state-filtered listing returned other states"
    )
    # Polls that count nothing rely on no total: a Livy-like API is polled incrementally too.
    livy = ApiBehaviour(total=T.UNFILTERED)
    assert incremental_usable(gathered({}), livy, counted=False) is None
    assert incremental_usable(gathered({}), ApiBehaviour(), counted=False) is None


@pytest.mark.parametrize(
    ("setting", "queue", "behaviour", "requests", "expected"),
    [
        ("full", "etl", KNOWN, 1000, ("full", "poll_strategy=full", False)),
        (
            "auto",
            None,
            KNOWN,
            1000,
            ("incremental", "takes 1000 requests", False),
        ),
        ("auto", "etl", KNOWN, AUTO_INCREMENTAL_AFTER, ("full", "takes 10 requests", False)),
        # A small queue's full listings probe total until it is known: recounts by total then.
        (
            "auto",
            "etl",
            ApiBehaviour(total=T.MATCHES_ROWS),
            3,
            ("full", "takes 3 requests", True),
        ),
        (
            "auto",
            "etl",
            KNOWN,
            AUTO_INCREMENTAL_AFTER + 1,
            ("incremental", "takes 11 requests", False),
        ),
        ("incremental", "etl", KNOWN, 1, ("incremental", "takes 1 requests", False)),
        (
            "auto",
            "etl",
            ApiBehaviour(),
            50,
            ("incremental", "takes 50 requests", False),
        ),
        (
            "incremental",
            "etl",
            ApiBehaviour(total=T.MISSING),
            50,
            ("incremental", "takes 50 requests", False),
        ),
    ],
)
def test_one_place_chooses_the_strategy(
    setting: str,
    queue: str | None,
    behaviour: ApiBehaviour,
    requests: int,
    expected: tuple[str, str, bool],
) -> None:
    name, reason, probe = choose(setting, queue, behaviour, requests)  # type: ignore[arg-type]
    assert (name, probe) == (expected[0], expected[2])
    assert reason == expected[1] or reason == f"a full listing {expected[1]}"


@pytest.mark.parametrize(
    ("total", "said"),
    [
        (TotalMeaning.UNKNOWN, "total: not yet seen"),
        (TotalMeaning.MATCHES_ROWS, "total matches the rows listed"),
        (TotalMeaning.FILTERED, "total counts filtered rows"),
        (TotalMeaning.UNFILTERED, "total does not count filtered rows (paging by rows)"),
        (TotalMeaning.MISSING, "no total (paging by rows)"),
    ],
)
def test_check_says_what_was_found_in_plain_words(total: TotalMeaning, said: str) -> None:
    described = ApiBehaviour(total=total).describe()
    assert described == (
        f"{said}; order unknown; state filter unknown; start filter unknown; "
        "queue filter unknown; states in lower case"
    )
    spelt = ApiBehaviour(total=total, spelling="Running").describe()
    assert spelt.endswith("; states spelt like 'Running'")


@pytest.mark.parametrize(
    ("behaviour", "blocker"),
    [
        (ApiBehaviour(state_filter=Seen.IGNORED), "the API ignores the state filter"),
        (
            ApiBehaviour(time_filter=Seen.IGNORED, order=Seen.IGNORED),
            "the API ignores both start and order: new jobs cannot be listed alone",
        ),
        (ApiBehaviour(time_filter=Seen.IGNORED), None),  # the order alone still finds new jobs
        (ApiBehaviour(), None),
    ],
)
def test_what_rules_incremental_polls_out_is_said_in_words(
    behaviour: ApiBehaviour, blocker: str | None
) -> None:
    assert behaviour.incremental_blocker() == blocker


M = TotalMeaning.MATCHES_ROWS


@pytest.mark.parametrize(
    ("passes", "total"),
    [
        # two unfiltered passes with different totals say nothing about state filters
        ([PassFacts(totals=frozenset({10}), rows=10, settled=True),
          PassFacts(totals=frozenset({12}), rows=12, settled=True, filtered_start=True)], M),
        # an unsettled state pass is no evidence, whatever its total
        ([PassFacts(filtered_state=JobState.DEAD, totals=frozenset({3}), rows=3),
          PassFacts(totals=frozenset({10}), rows=10, settled=True)], M),
        # only an unfiltered, settled pass says how many rows there are in all
        ([PassFacts(filtered_state=JobState.DEAD, totals=frozenset({3}), rows=3, settled=True),
          PassFacts(filtered_state=JobState.SUCCESS, totals=frozenset({7}), rows=7)], M),
        ([PassFacts(filtered_state=JobState.DEAD, totals=frozenset({3}), rows=3, settled=True),
          PassFacts(filtered_state=JobState.SUCCESS, totals=frozenset({8, 9}), rows=8,
                    settled=True)], M),
        # the evidence: a settled state pass whose total matched its rows, below all the rows
        ([PassFacts(filtered_state=JobState.DEAD, totals=frozenset({3}), rows=3, settled=True),
          PassFacts(totals=frozenset({10}), rows=10, settled=True)], TotalMeaning.FILTERED),
    ],
)  # fmt: skip
def test_total_counts_filtered_rows_only_on_settled_evidence(
    passes: list[PassFacts], total: TotalMeaning
) -> None:
    assert ApiBehaviour(total=M).learn(passes).total is total


def test_an_ignored_start_filter_stays_ignored() -> None:
    ignored = ApiBehaviour(time_filter=Seen.IGNORED)
    honest = PassFacts(filtered_start=True, rows=4, settled=True)
    assert ignored.learn([honest]).time_filter is Seen.IGNORED
    assert ApiBehaviour().learn([honest]).time_filter is Seen.HONOURED
