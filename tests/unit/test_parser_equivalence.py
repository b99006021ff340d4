"""The msgspec parser against the parser it replaced, on generated pages.

The parser as it stood before msgspec (orjson and a dict walk per row) lives on as the tolerant
path, for pages the strict schema refuses; it is the oracle here. Pages are built as JSON text,
so they can carry what a dict cannot (duplicate keys) and what the API never documents (null,
floats, huge integers, wrong types, rows that are not objects); the entry points must give the
same page as the old parser, or refuse it with the same error, whichever path they take.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import msgspec
import pytest
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from monitor.core.jobs import Job, JobState
from monitor.dli import models
from monitor.dli.errors import DLIError
from monitor.dli.models import ListPage, parse_job_detail, parse_list_page

_STATES = ["starting", "running", "recovering", "success", "dead"]
_ODD_STATES = ["Running", "DEAD", " success ", "killed", "", "running\n"]
_TIME_FIELDS = ("create_time", "update_time", "duration")
_TEXT_FIELDS = ("queue", "cluster_name", "name", "owner", "appId", "kind", "sc_type")

odd_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=4),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)


def _field(name: str, *, odd: bool) -> st.SearchStrategy[object]:
    """The documented value of a field, or (``odd``) now and then anything at all."""
    if name == "id":
        good: st.SearchStrategy[object] = st.uuids().map(str) | st.sampled_from(["a", "b", ""])
    elif name == "state":
        good = st.sampled_from(_STATES) | st.sampled_from(_ODD_STATES)
    elif name in _TIME_FIELDS:
        good = st.integers(min_value=0, max_value=2**53) | st.none()
    else:
        good = st.sampled_from(["q", "etl", "", "alice"]) | st.none() | st.text(max_size=6)
    return st.one_of(good, good, good, odd_values) if odd else good


_ALL_FIELDS = ("id", "state", *_TEXT_FIELDS, *_TIME_FIELDS, "log", "req_body")


@st.composite
def row_pairs(draw: st.DrawFn, *, odd: bool) -> list[tuple[str, object]]:
    """A row's key/value pairs in order; a key may repeat (JSON allows it, the last one wins)."""
    pairs = [
        (name, draw(_field(name, odd=odd)))
        for name in _ALL_FIELDS
        if draw(st.integers(0, 9)) > (0 if name in ("id", "state") else 3)
    ]
    if pairs and draw(st.integers(0, 9)) == 0:
        name, _ = draw(st.sampled_from(pairs))
        pairs.append((name, draw(_field(name, odd=odd))))
    return draw(st.permutations(pairs))


def _object(pairs: list[tuple[str, object]]) -> str:
    return "{" + ",".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in pairs) + "}"


#: rows as the API documents them: such a page takes the fast path, so most pages are made of them
documented_rows = row_pairs(odd=False).map(_object)
rows = st.one_of(documented_rows, row_pairs(odd=True).map(_object), odd_values.map(json.dumps))


@st.composite
def pages(draw: st.DrawFn) -> bytes:
    envelope: list[tuple[str, str]] = []
    row_kind = documented_rows if draw(st.booleans()) else rows
    match draw(st.integers(0, 9)):
        case 0:
            pass  # no sessions at all
        case 1:
            envelope.append(("sessions", json.dumps(draw(odd_values))))
        case _:
            envelope.append(
                ("sessions", "[" + ",".join(draw(st.lists(row_kind, max_size=8))) + "]")
            )
    total = draw(st.integers(0, 10**6) | st.none() | st.just("absent") | odd_values)
    if total != "absent":
        envelope.append(("total", json.dumps(total)))
    envelope.append(("from", "0"))
    body = "{" + ",".join(f'"{k}":{v}' for k, v in draw(st.permutations(envelope))) + "}"
    return body.encode()


def _fast(body: bytes) -> bool:
    try:
        models._PAGE.decode(body)  # the private decoder: which path ran is what the statistics show
    except (msgspec.ValidationError, msgspec.DecodeError):
        return False
    return True


def _outcome(parse: Callable[[], object]) -> object:
    try:
        return parse()
    except DLIError as exc:
        return (type(exc).__name__, str(exc), getattr(exc, "request_id", None))


LIST_PAGE_EXAMPLES = (
    b'{"sessions": [{"id": "a", "state": "running", "create_time": 1.5}], "total": 1}',
    b'{"sessions": [{"id": "a", "state": "running", "id": 7}], "total": 1}',
    b'{"sessions": [{"id": "a", "state": "running"}], "total": true}',
    b'{"sessions": [{"id": "a", "state": "running"}], "total": -1}',
    b'{"sessions": [{"id": "a", "state": "running", "duration": 99999999999999999999}]}',
    b'{"sessions": [{"id": "a", "state": "running", "name": "\\ud800"}]}',
    b'{"sessions": [{"id": "a", "state": "running"}]} trailing',
    b"\xef\xbb\xbf{}",
)
DETAIL_EXAMPLES = (
    b'{"id": "a", "state": "Running", "appId": null}',
    b'{"id": "", "state": "running"}',
    b'{"id": "a", "state": "zombie"}',
)


def with_examples(
    test: Callable[[bytes], None], examples: tuple[bytes, ...]
) -> Callable[[bytes], None]:
    for body in reversed(examples):
        test = example(body)(test)
    return test


def list_page_parses_as_before(body: bytes) -> None:
    new = _outcome(lambda: parse_list_page(body, default_queue="dq", request_id="rid"))
    event("fast path" if _fast(body) else "tolerant path")
    old = _outcome(lambda: models._tolerant_list_page(body, "dq", "rid"))
    assert new == old


def job_detail_parses_as_before(body: bytes) -> None:
    event("fast path" if _fast(b'{"sessions": [' + body + b"]}") else "tolerant path")
    new = _outcome(lambda: parse_job_detail(body, default_queue="dq", request_id="rid"))
    old = _outcome(lambda: models._tolerant_job_detail(body, "dq", "rid"))
    assert new == old


# The fast tier (and each mutant) runs the pinned examples and a short random search; the slow
# tier runs a long one, so a parser change is first judged in seconds and then thoroughly.
detail_bodies = st.one_of(documented_rows, rows).map(str.encode)
test_list_pages_parse_as_before = settings(max_examples=100, deadline=None)(
    given(pages())(with_examples(list_page_parses_as_before, LIST_PAGE_EXAMPLES))
)
test_job_details_parse_as_before = settings(max_examples=100, deadline=None)(
    given(detail_bodies)(with_examples(job_detail_parses_as_before, DETAIL_EXAMPLES))
)


def test_the_documented_page_takes_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The seed's rows (``appId: null``, ``log`` lists, no ``queue``) never need the tolerant
    path; if they did, every real page would pay for two parses."""

    def refuse(*_: object) -> ListPage:
        raise AssertionError("the tolerant path ran")

    monkeypatch.setattr(models, "_tolerant_list_page", refuse)
    body = (
        b'{"from": 0, "total": 1, "sessions": [{"id": "178fa687", "state": "dead", "appId": null,'
        b' "log": ["stdout: ", "stderr: "], "cluster_name": "test", "create_time": 1531906043036,'
        b' "sc_type": "A", "proxyUser": "", "image": "", "req_body": "{}"}]}'
    )
    page = parse_list_page(body)
    assert page.jobs == (
        Job("178fa687", JobState.DEAD, "test", sc_type="A", create_time=1531906043036),
    )
