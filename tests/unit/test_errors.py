"""Typed errors: what each API answer becomes, what it says, and whether it is retried."""

from __future__ import annotations

import pytest

from monitor.dli.errors import (
    APIError,
    DLIError,
    MalformedResponse,
    RequestTimeout,
    TransportError,
    UnknownJobState,
    api_error,
)


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (b'{"error_code": "DLI.0001", "error_msg": "bad"}', "DLI.0001", "bad"),
        (b'{"error_code": "DLI.0001"}', "DLI.0001", ""),
        (b'{"error_msg": "only a message"}', "", "only a message"),
        (b'{"errorCode": "DLI.0005", "errorMsg": "camel"}', "DLI.0005", "camel"),
        (b'{"errorMsg": "camel message"}', "", "camel message"),
        (b'{"code": "APIG.0308", "message": "slow down"}', "APIG.0308", "slow down"),
        (b'{"message": "no code"}', "", "no code"),
        (b'{"code": 7, "message": "numeric code"}', "7", "numeric code"),
        (b'{"error": {"code": "DLI.0999", "message": "nested"}}', "DLI.0999", "nested"),
        (
            b'{"a": 1, "b": {"c": 2}, "e": {"error_code": "X.1", "error_msg": "deep"}}',
            "X.1",
            "deep",
        ),
        (b'{"unrelated": true}', "", ""),
        (b"<html>502 Bad Gateway</html>", "", "<html>502 Bad Gateway</html>"),
        (b"", "", ""),
        (b"[1, 2]", "", ""),
    ],
)
def test_every_error_body_shape_gives_its_code_and_message(
    body: bytes, code: str, message: str
) -> None:
    error = api_error(400, body, None, None)
    assert (error.status, error.code, error.message) == (400, code, message)


def test_a_long_body_is_cut_and_the_request_id_comes_from_the_header_first() -> None:
    error = api_error(502, b"x" * 1000, "hdr-1", 2.5)
    assert error.message == "x" * 200 and error.request_id == "hdr-1" and error.retry_after == 2.5
    long_msg = api_error(400, b'{"error_msg": "' + b"y" * 900 + b'"}', None, None)
    assert long_msg.message == "y" * 500
    body_rid = b'{"error_code": "E", "request_id": "body-1"}'
    assert api_error(400, body_rid, "hdr-2", None).request_id == "hdr-2"
    assert api_error(400, body_rid, None, None).request_id == "body-1"
    assert api_error(400, b'{"requestId": "camel-1"}', None, None).request_id == "camel-1"
    assert api_error(400, b'{"request_id": 5}', None, None).request_id is None


def test_an_api_error_reads_as_one_line_with_everything_known() -> None:
    assert str(APIError(400, "DLI.0001", "bad", "r-1")) == "HTTP 400 DLI.0001: bad (request id r-1)"
    assert str(APIError(404, "", "")) == "HTTP 404: no message"
    assert APIError(404, "", "").error_code == "HTTP404"
    assert APIError(400, "DLI.0001", "").error_code == "DLI.0001"
    assert str(MalformedResponse("torn", "r-2")) == "torn (request id r-2)"
    assert str(MalformedResponse("torn")) == "torn"
    unknown = UnknownJobState("QUEUED", "r-3")
    assert str(unknown) == "unknown job state 'QUEUED' (request id r-3)"
    assert (unknown.state, unknown.request_id) == ("QUEUED", "r-3")
    assert str(UnknownJobState("QUEUED")) == "unknown job state 'QUEUED'"
    assert RequestTimeout("slow").error_code == "RequestTimeout"


@pytest.mark.parametrize(
    ("error", "retryable", "throttled"),
    [
        (APIError(429, "", ""), True, True),
        (APIError(400, "APIG.0308", ""), True, True),
        (APIError(403, "APIGW.0308", ""), True, True),
        (APIError(400, "DLI.0999", ""), True, False),
        (APIError(500, "", ""), True, False),
        (APIError(503, "DLI.0001", ""), True, False),
        (APIError(499, "", ""), False, False),
        (APIError(400, "DLI.0001", ""), False, False),
        (APIError(401, "APIGW.0301", ""), False, False),
        (APIError(404, "DLI.0002", ""), False, False),
    ],
)
def test_retryability_is_decided_on_the_code_as_well_as_the_status(
    error: APIError, retryable: bool, throttled: bool
) -> None:
    assert (error.retryable, error.throttled) == (retryable, throttled)


def test_failures_before_an_answer_and_torn_answers_are_retried_unknown_states_not() -> None:
    assert TransportError("reset").retryable and RequestTimeout("slow").retryable
    assert MalformedResponse("torn").retryable
    assert not UnknownJobState("QUEUED").retryable
    assert not DLIError("base").retryable and DLIError("base").retry_after is None


def test_errors_carry_their_text_and_request_id_as_exceptions_do() -> None:
    error = APIError(400, "DLI.0001", "bad", "r-1")
    assert error.args == ("HTTP 400 DLI.0001: bad (request id r-1)",)
    assert MalformedResponse("torn", "r-2").request_id == "r-2"


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (b'{"code": "DLI.0001"}', "DLI.0001", ""),
        (b'{"error": {"code": "DLI.0002"}}', "DLI.0002", ""),
        (b'{"error": {"message": "only text"}}', "", "only text"),
        (b"\xff\xfe not utf-8", "", "\ufffd\ufffd not utf-8"),
    ],
)
def test_partial_error_bodies_keep_what_they_have(body: bytes, code: str, message: str) -> None:
    error = api_error(400, body, None, None)
    assert (error.code, error.message) == (code, message)
