"""Parsing of list pages and job details."""

from __future__ import annotations

import orjson
import pytest

from monitor.core.jobs import Job, JobState
from monitor.dli.errors import MalformedResponse, UnknownJobState
from monitor.dli.models import parse_job_detail, parse_list_page

SEED_EXAMPLE = b"""{
    "from": 0, "total": 1,
    "sessions": [{"id": "178fa687-2e8a-41ed-a439-b00de60bb176", "state": "dead", "appId": null,
                  "log": ["stdout: ", "stderr: ", "YARN Diagnostics: "], "sc_type": "A",
                  "cluster_name": "test", "create_time": 1531906043036}]
}"""


def test_seed_page_example_parses() -> None:
    page = parse_list_page(SEED_EXAMPLE)
    assert page.total == 1 and page.rows == 1 and page.rejected == 0
    (job,) = page.jobs
    assert job.state is JobState.DEAD
    assert job.queue == "test"  # from cluster_name when `queue` is absent
    assert job.app_id == ""  # null appId
    assert job.create_time == 1531906043036 and job.update_time is None


def test_detail_example_parses() -> None:
    body = orjson.dumps(
        {
            "id": "0a324461-d9d9-45da-a52a-3b3c7a3d809e",
            "state": "starting",
            "queue": "test",
            "create_time": 1531906043036,
            "update_time": 1531906043036,
            "sc_type": "A",
        }
    )
    job = parse_job_detail(body)
    assert job.state is JobState.STARTING and job.update_time == 1531906043036


def test_bad_rows_are_counted_not_fatal() -> None:
    body = orjson.dumps(
        {
            "total": 4,
            "sessions": [
                {"id": "a", "state": "running"},
                {"id": "b", "state": "paused"},
                {"state": "running"},
                "nonsense",
            ],
        }
    )
    page = parse_list_page(body, default_queue="q")
    assert [j.id for j in page.jobs] == ["a"]
    assert (page.rows, page.rejected, page.unknown_state) == (4, 2, 1)
    assert page.jobs[0].queue == "q"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"[]",
        b'{"total": "1", "sessions": []}',
        b'{"total": 1, "sessions": {}}',
        b'{"total": -1, "sessions": []}',
    ],
)
def test_malformed_envelope_is_rejected_whole(body: bytes) -> None:
    with pytest.raises(MalformedResponse):
        parse_list_page(body, request_id="rid-1")


def test_a_page_without_total_is_read_by_its_rows() -> None:
    page = parse_list_page(b'{"sessions": [{"id": "a", "state": "RUNNING"}]}')
    assert page.total is None and page.rows == 1 and page.jobs[0].state.value == "running"
    assert page.spelling == "RUNNING"


def test_an_unknown_state_in_a_detail_is_not_retried() -> None:
    with pytest.raises(UnknownJobState) as info:
        parse_job_detail(b'{"id": "a", "state": "queued"}', request_id="r")
    assert not info.value.retryable and info.value.state == "queued"


def test_malformed_detail_names_the_request() -> None:
    with pytest.raises(MalformedResponse, match="rid-9"):
        parse_job_detail(b'{"id": "x"}', request_id="rid-9")


def test_a_detail_without_a_queue_takes_the_default_and_names_its_request() -> None:
    job = parse_job_detail(b'{"id": "a", "state": "dead"}', default_queue="etl")
    assert job.queue == "etl" and job.state is JobState.DEAD
    assert parse_job_detail(b'{"id": "a", "state": "dead"}').queue == ""
    with pytest.raises(UnknownJobState, match="rid-3"):
        parse_job_detail(b'{"id": "a", "state": "zombie"}', request_id="rid-3")
    with pytest.raises(MalformedResponse, match="rid-4"):
        parse_job_detail(b"[1]", request_id="rid-4")
    with pytest.raises(MalformedResponse, match="malformed"):
        parse_job_detail(b'{"state": "dead"}')


def test_every_kept_field_of_a_row_is_read() -> None:
    row = {
        "id": "j1", "state": "running", "queue": "etl", "cluster_name": "other", "name": "n1",
        "owner": "alice", "appId": "app-1", "kind": "spark", "sc_type": "B",
        "create_time": 1.5e12, "update_time": 1_500_000_000_500, "duration": 300,
    }  # fmt: skip
    page = parse_list_page(orjson.dumps({"total": 1, "sessions": [row]}))
    assert page.jobs[0] == Job(
        "j1", JobState.RUNNING, "etl", "n1", "alice", "app-1", "spark", "B",
        1_500_000_000_000, 1_500_000_000_500, 300,
    )  # fmt: skip
    odd = {"id": "j2", "state": "dead", "cluster_name": "old", "name": 5, "create_time": True}
    (job,) = parse_list_page(orjson.dumps({"total": 1, "sessions": [odd]})).jobs
    assert (job.queue, job.name, job.create_time) == ("old", "", None)


def test_a_row_with_an_empty_id_is_rejected() -> None:
    page = parse_list_page(b'{"total": 1, "sessions": [{"id": "", "state": "running"}]}')
    assert page.jobs == () and page.rejected == 1


def test_a_malformed_detail_says_what_is_wrong() -> None:
    with pytest.raises(MalformedResponse) as info:
        parse_job_detail(b'{"state": "dead"}')
    assert str(info.value) == "job detail is malformed: row has no id or state"
    with pytest.raises(UnknownJobState) as long_state:
        parse_job_detail(orjson.dumps({"id": "a", "state": "x" * 100}))
    assert long_state.value.state == "x" * 40


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"[]", "response is not a JSON object"),
        (b'{"total": 1, "sessions": {}}', "'sessions' is not a list"),
        (b'{"total": -1, "sessions": []}', "'total' is not a non-negative integer"),
        (b'{"total": true, "sessions": []}', "'total' is not a non-negative integer"),
    ],
)
def test_a_malformed_list_page_says_what_is_wrong_and_names_its_request(
    body: bytes, why: str
) -> None:
    with pytest.raises(MalformedResponse) as info:
        parse_list_page(body, request_id="rid-5")
    assert str(info.value) == f"{why} (request id rid-5)"
    with pytest.raises(MalformedResponse, match=r"^response is not JSON: "):
        parse_list_page(b"{", request_id=None)


def test_rows_without_a_queue_take_the_listing_s_queue_or_none() -> None:
    body = b'{"sessions": [{"id": "a", "state": "starting"}], "total": 1}'
    assert parse_list_page(body).jobs[0].queue == ""
    assert parse_list_page(body, default_queue="etl").jobs[0].queue == "etl"
    assert parse_list_page(b'{"sessions": null, "total": 0}').rows == 0
    assert parse_list_page(b'{"total": 0}').rows == 0


def test_unknown_states_are_counted_and_the_first_odd_spelling_kept() -> None:
    rows = [
        {"id": "b", "state": "running"},
        {"id": "a", "state": "Running"},
        {"id": "c", "state": "QUEUED"},
        {"id": "d", "state": "paused"},
    ]
    page = parse_list_page(orjson.dumps({"total": 4, "sessions": rows}))
    assert (page.rows, len(page.jobs), page.unknown_state, page.rejected) == (4, 2, 2, 0)
    assert page.spelling == "Running"


def test_spelling_is_reported_only_when_odd_and_then_the_first_one() -> None:
    canonical = (
        b'{"total": 2, "sessions": [{"id": "a", "state": "running"}, {"id": "b", "state": "dead"}]}'
    )
    assert parse_list_page(canonical).spelling is None
    odd = (
        b'{"total": 2, "sessions": [{"id": "a", "state": "Running"}, {"id": "b", "state": "DEAD"}]}'
    )
    assert parse_list_page(odd).spelling == "Running"


def test_the_tolerant_path_counts_every_row_of_an_unknown_state() -> None:
    # A row that is not an object sends the page to the tolerant path.
    body = (
        b'{"total": 4, "sessions": [7, {"id": "a", "state": "zombie"},'
        b' {"id": "b", "state": "queued"}, {"id": "c", "state": "running"}]}'
    )
    page = parse_list_page(body)
    assert (page.rejected, page.unknown_state, [j.id for j in page.jobs]) == (1, 2, ["c"])
