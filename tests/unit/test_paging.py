"""Paging ends on the rows, whatever ``total`` counts; filters the API ignores are caught.

Every test pages an in-memory world through the simulator's own answer functions under one
:class:`ApiVariant`, so each open point of the API is tested alone, in milliseconds.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.core.behaviour import ApiBehaviour, Seen, TotalMeaning
from monitor.core.jobs import JobState
from monitor.dli.errors import MalformedResponse
from monitor.dli.models import ListPage
from monitor.dli.transport import Request, Response
from monitor.poll.paging import Pass, Query, list_all
from monitor.simulator import ApiVariant, World
from monitor.simulator.api import Answer
from tests.fakes import FakeApi

NOW_MS = 1_700_000_000_000


def world(jobs: int = 47, queues: tuple[str, ...] = ("etl", "ml")) -> World:
    return World("p1", queues, seed=3, now_ms=NOW_MS, initial_jobs=jobs)


def truth(w: World, queue: str, state: JobState | None = None) -> set[str]:
    return {
        j.id for j in w.jobs.values() if j.queue == queue and (state is None or j.state is state)
    }


def past_end(source: FakeApi) -> int:
    """Requests whose page came back empty: past the end of the data."""
    return sum(
        1
        for q in source.lists()
        if int(q["from"]) >= len(truth(source.world, q.get("queue_name", "")))
    )


# total is trusted only once it matched the rows, so never with total="project".
@pytest.mark.parametrize(
    ("total", "trust"),
    [("filtered", False), ("filtered", True), ("project", False), ("missing", False)],
)
async def test_a_pass_lists_exactly_the_queue_and_at_most_one_page_past_its_end(
    total: str, trust: bool
) -> None:
    w = world(jobs=60)
    source = FakeApi(w, ApiVariant(total=total))  # type: ignore[arg-type]
    listing = await list_all(source.client, Query("etl"), page_size=7, trust_total=trust)
    assert set(listing.jobs) == truth(w, "etl")
    assert listing.complete
    # Nothing known: the pages in flight beside the one that ends the pass may be past it.
    extra = 0 if trust else source.max_concurrency - 1
    assert past_end(source) <= 1 + extra
    assert listing.requests <= math.ceil(len(truth(w, "etl")) / 7) + 1 + extra


async def test_a_livy_total_is_seen_as_unfiltered_and_never_paged_towards() -> None:
    w = world(jobs=60)
    source = FakeApi(w, ApiVariant(total="project"))
    listing = await list_all(source.client, Query("etl"), page_size=5, trust_total=False)
    assert ApiBehaviour().learn(listing.facts).total is TotalMeaning.UNFILTERED
    assert past_end(source) <= source.max_concurrency


async def test_an_exact_multiple_of_the_page_size_costs_one_empty_page() -> None:
    w = world(jobs=40, queues=("etl",))
    source = FakeApi(w)
    await list_all(source.client, Query("etl"), page_size=10, trust_total=False)
    assert [int(q["from"]) for q in source.lists()] == [0, 10, 20, 30, 40]


async def test_a_trusted_total_pages_concurrently_and_stops_at_it() -> None:
    w = world(jobs=40, queues=("etl",))
    source = FakeApi(w)
    await list_all(source.client, Query("etl"), page_size=10, trust_total=True)
    assert sorted(int(q["from"]) for q in source.lists()) == [0, 10, 20, 30]


async def test_a_server_side_page_cap_is_found_with_one_probe_and_followed() -> None:
    w = world(jobs=50, queues=("etl",))
    source = FakeApi(w, ApiVariant(page_cap=8))
    listing = await list_all(source.client, Query("etl"), page_size=20, trust_total=False)
    assert set(listing.jobs) == truth(w, "etl")
    offsets = [int(q["from"]) for q in source.lists()]
    # The first pages in flight assumed size 20; the probe at 8 finds the cap, then pages of 8.
    probe = offsets.index(8)
    assert offsets[:probe] == [0, 20, 40, 60]
    assert offsets[probe:] == [8, 16, 24, 32, 40, 48]


async def test_rows_of_other_queues_are_dropped_when_the_queue_filter_is_ignored() -> None:
    w = world(jobs=30)
    source = FakeApi(w, ApiVariant(ignore_queue_filter=True))
    listing = await list_all(source.client, Query("etl"), page_size=7, trust_total=False)
    assert set(listing.jobs) == truth(w, "etl")
    assert ApiBehaviour().learn(listing.facts).queue_filter is Seen.IGNORED


@pytest.mark.parametrize("case", ["title", "upper"])
async def test_states_are_read_whatever_their_case(case: str) -> None:
    w = world(jobs=25)
    source = FakeApi(w, ApiVariant(state_case=case))  # type: ignore[arg-type]
    listing = await list_all(source.client, Query("etl"), page_size=10, trust_total=False)
    assert {j.id: j.state for j in listing.jobs.values()} == {
        j.id: j.state for j in w.jobs.values() if j.queue == "etl"
    }
    assert listing.unknown_state == 0
    assert ApiBehaviour().learn(listing.facts).spelling in {"Running", "RUNNING", "Starting"} | {
        s.value.title() for s in JobState
    } | {s.value.upper() for s in JobState}


async def test_an_ignored_order_is_seen_from_the_create_times() -> None:
    w = world(jobs=30)
    source = FakeApi(w, ApiVariant(default_order="oldest", ignore_order=True))
    listing = await list_all(source.client, Query("etl"), page_size=50, trust_total=False)
    assert ApiBehaviour().learn(listing.facts).order is Seen.IGNORED
    honoured = await list_all(
        FakeApi(w, ApiVariant(default_order="oldest")).client,
        Query("etl"),
        page_size=50,
        trust_total=False,
    )
    assert ApiBehaviour().learn(honoured.facts).order is Seen.HONOURED


async def test_an_ignored_start_filter_is_caught_and_its_rows_dropped() -> None:
    w = world(jobs=40)
    since = sorted(j.create_time for j in w.jobs.values() if j.queue == "etl")[-5]
    source = FakeApi(w, ApiVariant(ignore_time_filter=True))
    listing = await list_all(
        source.client,
        Query("etl", since_ms=since),
        page_size=3,
        trust_total=False,
    )
    recent = {j.id for j in w.jobs.values() if j.queue == "etl" and j.create_time >= since}
    assert set(listing.jobs) == recent
    assert ApiBehaviour().learn(listing.facts).time_filter is Seen.IGNORED
    # With the order honoured, paging stopped at the first page older than start.
    assert listing.requests < math.ceil(len(truth(w, "etl")) / 3)


async def test_a_pass_that_reads_a_job_twice_is_incomplete() -> None:
    w = world(jobs=30, queues=("etl",))
    source = FakeApi(w)

    # A job lands at the head before every page: rows shift down, the next page repeats one.
    def land(query: dict[str, str]) -> None:
        w.submit("etl")

    source.on_list = land
    listing = await list_all(source.client, Query("etl"), page_size=7, trust_total=False)
    assert not listing.complete
    assert not listing.facts[0].settled


def test_merging_passes_adds_their_costs_and_keeps_or_replaces_readings() -> None:
    from monitor.core.behaviour import PassFacts
    from monitor.core.jobs import Job

    old, new = Job("a", JobState.RUNNING, "etl"), Job("a", JobState.SUCCESS, "etl")
    first = Pass(
        {"a": old},
        complete=True,
        requests=2,
        rejected=1,
        unknown_state=1,
        request_id="r1",
        facts=[PassFacts(rows=1)],
    )
    second = Pass(
        {"a": new, "b": Job("b", JobState.DEAD, "etl")},
        complete=False,
        requests=3,
        rejected=2,
        unknown_state=4,
        request_id=None,
        facts=[PassFacts(rows=2)],
    )
    kept = Pass(
        {"a": old}, requests=2, rejected=1, unknown_state=1, request_id="r1",
        facts=[PassFacts(rows=1)],
    )  # fmt: skip
    kept.merge(second, keep_existing=True)
    assert kept.jobs["a"] is old and "b" in kept.jobs
    first.merge(second)
    assert first.jobs["a"] is new
    for merged in (first, kept):
        assert (merged.complete, merged.requests, merged.rejected, merged.unknown_state) == (
            False, 5, 3, 5,
        )  # fmt: skip
        assert merged.request_id == "r1", "a pass without a request id keeps the last one seen"
        assert [f.rows for f in merged.facts] == [1, 2]
    latest = Pass(request_id="r1")
    latest.merge(Pass(request_id="r2"))
    assert latest.request_id == "r2" and latest.complete


class IgnoresFrom(FakeApi):
    """An API that answers the first page whatever ``from`` asks for."""

    def answer(self, request: Request, request_id: str) -> Answer:
        query = tuple((k, "0" if k == "from" else v) for k, v in request.query)
        return super().answer(Request(request.path, query), request_id)


@pytest.mark.parametrize("jobs", [3, 60])
async def test_an_api_that_ignores_from_fails_the_pass_at_once(jobs: int) -> None:
    """Without this, a short first page looked like a server's page cap and paging went on to
    MAX_PAGES requests (every one of them spent from the API quota)."""
    source = IgnoresFrom(world(jobs=jobs))
    with pytest.raises(MalformedResponse, match="`from` is ignored"):
        await list_all(source.client, Query("etl"), page_size=7, trust_total=False)
    # One repeat may be churn, two are not; pages already in flight are answered first.
    assert len(source.lists()) <= 2 + source.max_concurrency


async def test_one_page_moved_whole_by_churn_is_not_taken_for_an_ignored_from() -> None:
    """Pages of 2: two jobs created between the first request and the second move the first
    page's rows to the second page. The pass goes on and lists every job that was there before
    (the two new ones, ahead of the offset already read, are the next poll's)."""
    w = world(jobs=20, queues=("etl",))
    before = truth(w, "etl")
    source = FakeApi(w)
    created = False

    def churn(query: dict[str, str]) -> None:
        nonlocal created
        if query["from"] == "2" and not created:
            created = True
            for n in range(2):  # the newest jobs: listed first
                w.submit("etl", at_ms=w.now_ms + 1_000 + n)

    source.on_list = churn
    listing = await list_all(source.client, Query("etl"), page_size=2, trust_total=False)
    assert created and set(listing.jobs) == before


class Unreadable(FakeApi):
    """An API whose every page holds rows, none of which can be read (no id)."""

    def answer(self, request: Request, request_id: str) -> Answer:
        return Answer(200, {"sessions": [{"state": "running"}] * 4})


async def test_pages_of_unreadable_rows_end_the_pass_at_once() -> None:
    """No job id to compare: before, a short page of such rows looked like a page cap and the
    pass went on to MAX_PAGES (the client fuzz test found it when the bound was raised)."""
    source = Unreadable(world(jobs=3))
    with pytest.raises(MalformedResponse, match="does not advance"):
        await list_all(source.client, Query("etl"), page_size=7, trust_total=False)
    assert len(source.requests) == 3


@pytest.mark.parametrize(
    ("times", "passed"),
    [
        ((300, 200, 100), True),  # newest first, the last row older than start: stop
        ((300, 150, 150), True),  # equal times are in order too
        ((300, 250, 200), False),  # the last row is at start exactly: not past it
        ((100, 300, 50), False),  # out of order: the order is not honoured here
        ((300, 100, 250), False),  # the last row is what counts, not the second to last
        ((), False),  # no times: no evidence
    ],
)
def test_a_pass_with_start_ignored_ends_at_the_first_page_wholly_before_it(
    times: tuple[int, ...], passed: bool
) -> None:
    from monitor.core.jobs import Job
    from monitor.poll.paging import _Cutoff, _Kept

    listed = ListPage(
        total=None,
        rows=len(times),
        jobs=tuple(
            Job(f"j{i}", JobState.SUCCESS, "etl", create_time=t) for i, t in enumerate(times)
        ),
    )
    page = _Kept.of(listed, None)
    assert _Cutoff(Query("etl", since_ms=200)).passed(page) is passed
    assert _Cutoff(Query("etl")).passed(page) is False, "no start: nothing to pass"


class InFlight(FakeApi):
    """Counts the list requests in flight at once (sent, not yet answered)."""

    def __init__(self, w: World, variant: ApiVariant, workers: int) -> None:
        super().__init__(w, variant, max_concurrency=workers)
        self.in_flight = self.most_in_flight = 0

    async def send(self, request: Request) -> Response:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            return await super().send(request)
        finally:
            self.in_flight -= 1


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    rows=st.integers(0, 120),
    size=st.integers(1, 25),
    workers=st.integers(1, 8),
    total=st.sampled_from(["filtered", "project", "missing"]),
    known=st.sampled_from([None, 0, -1, 1, 30, -15, -60]),
)
async def test_a_cold_listing_pages_at_full_concurrency_and_its_waste_is_bounded(
    rows: int, size: int, workers: int, total: str, known: int | None
) -> None:
    """``known``: no previous size (None), or the previous pass's size off by that much. The
    cost is compared with reading one page after another up to the first page not full."""
    w = World("p1", ("etl", "ml"), seed=5, now_ms=NOW_MS, initial_jobs=0)
    for n in range(rows):
        w.submit("etl", at_ms=NOW_MS - n)
    for n in range(40):  # another queue's jobs, which a Livy total counts too
        w.submit("ml", at_ms=NOW_MS - n)
    source = InFlight(w, ApiVariant(total=total), workers)  # type: ignore[arg-type]
    expected = None if known is None else max(0, rows + known)
    listing = await list_all(
        source.client,
        Query("etl"),
        page_size=size,
        trust_total=False,
        size_honoured=True,
        expected_rows=expected,
    )
    assert set(listing.jobs) == truth(w, "etl") and listing.complete
    sequential = rows // size + 1
    waste = listing.requests - sequential
    if expected is None:
        assert waste <= workers - 1
        if total == "missing" and rows >= size * workers:
            assert source.most_in_flight == workers, "full speed from the first request"
    else:
        missed = math.ceil(abs(expected - rows) / size)
        assert waste <= max(1, missed), "a guess costs what it missed"
        if expected == rows:
            assert waste == 0
    assert waste >= 0


async def test_a_known_size_is_listed_concurrently_even_where_total_counts_every_job() -> None:
    w = world(jobs=0, queues=("etl", "ml"))
    for n in range(95):
        w.submit("etl", at_ms=NOW_MS - n)
    for n in range(300):
        w.submit("ml", at_ms=NOW_MS - n)
    source = InFlight(w, ApiVariant(total="project"), 8)
    listing = await list_all(
        source.client,
        Query("etl"),
        page_size=10,
        trust_total=False,
        size_honoured=True,
        expected_rows=95,
    )
    assert len(listing.jobs) == 95
    assert sorted(int(q["from"]) for q in source.lists()) == list(range(0, 100, 10))
    assert source.most_in_flight == 8


async def test_rows_to_keep_as_records_never_stay_readings() -> None:
    """A baseline keeps each finished row as its compact record as its page arrives, so the
    listing of a long history holds a reading only for the jobs that can still change."""
    from monitor.core.tracked import FinishedJob

    w = world(jobs=60)
    source = FakeApi(w)
    listing = await list_all(
        source.client,
        Query("etl"),
        page_size=7,
        trust_total=False,
        compact=lambda job: FinishedJob.of(job) if job.state.terminal else None,
    )
    assert set(listing.jobs) | set(listing.finished) == truth(w, "etl")
    assert not set(listing.jobs) & set(listing.finished)
    assert all(not job.state.terminal for job in listing.jobs.values())
    assert all(isinstance(r, FinishedJob) for r in listing.finished.values())
    assert listing.listed == len(truth(w, "etl"))
    assert sorted(listing.states()) == sorted(j.state for j in w.jobs.values() if j.queue == "etl")
