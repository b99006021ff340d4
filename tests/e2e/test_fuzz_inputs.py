"""Every input surface fuzzed through the real entry point (``monitor.cli.main`` in-process, or
the installed command where the command runs until signalled): environment variables, TOML
files (valid TOML of every type, and bytes that are not TOML), command-line flags and state
files. Whatever comes in, the outcome is exit 0, 1 or 2 with readable ``dli-monitor:`` lines on
stderr (at most one that is not a warning), never a traceback, and no secret-like value that
was put in ever comes out.

Network targets are loopback only: a stub that answers every request 401 stands in for DLI and
for the metadata service, and the endpoint and metadata URL are always set to it."""

from __future__ import annotations

import datetime as dt
import io
import json
import math
import os
import re
import threading
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from monitor.app.config import SECRET_FIELDS, Settings
from monitor.cli import main
from monitor.core.jobs import Job, JobState
from monitor.core.snapshot import JobSnapshot
from monitor.state import codec
from tests.harness import stop_after_first_line

PREFIX = "DLI_MONITOR_"
#: settings that name files or other hosts: never generated (reading /etc/shadow as a token
#: file, or a request to a generated host, is not what a fuzz test may do)
FORCED = frozenset({"endpoint", "metadata_url", "secrets_dir", "token_file", "state_file"})
FIELDS = sorted(set(Settings.model_fields) - FORCED)


def fuzz(examples: int) -> settings:
    """``examples`` per run, no deadline (each one starts the command)."""
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


#: a value nothing may echo: distinctive enough to find in any output
secret_values = st.from_regex(r"S3CRET[0-9a-f]{12}", fullmatch=True)
env_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=30)
plausible = st.sampled_from(
    ["", " ", "0", "-1", "1", "30", "1e9", "nan", "inf", "true", "no", "etl", "etl,adhoc",
     "etl,,bad queue", "aksk", "token", "none", "json", "console", "debug", "cn-north-4",
     "xx-nowhere-9", "127.0.0.1:0", "[::1]:0", "10,30,20", "full", "auto", "incremental"]
)  # fmt: skip


class _Refuses(BaseHTTPRequestHandler):
    """Every request: 401 with an API gateway error body."""

    def _answer(self) -> None:
        body = b'{"error_code": "APIGW.0301", "error_msg": "Incorrect IAM authentication"}'
        try:
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up first: pages are asked concurrently, and the first refusal
            # ends the pass and closes the others' connections. (socketserver would print
            # the traceback to the stderr under test.)
            pass

    do_GET = do_PUT = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def stub() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refuses)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def base_env(stub: str) -> dict[str, str]:
    clean = {
        k: v for k, v in os.environ.items() if not k.upper().startswith((PREFIX, "HUAWEICLOUD_"))
    }
    return {**clean, f"{PREFIX}ENDPOINT": stub, f"{PREFIX}METADATA_URL": stub}


def run_main(argv: list[str], environ: dict[str, str]) -> tuple[int, str, str]:
    """``main(argv)`` with exactly ``environ``; (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(environ)
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse's exits
                code = int(exc.code or 0)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return code, out.getvalue(), err.getvalue()


def assert_clean_outcome(code: int, out: str, err: str, secrets: set[str]) -> None:
    event(f"exit {code}")  # --hypothesis-show-statistics: how far the examples got
    assert code in (0, 1, 2), (code, err)
    assert "Traceback" not in out + err, err
    lines = err.splitlines()
    for line in lines:
        assert line.startswith("dli-monitor: ") or re.fullmatch(r"\d+ of \d+ failed", line), line
    problems = [line for line in lines if not line.startswith("dli-monitor: warning: ")]
    if code == 2:
        assert len(problems) == 1, err
    for secret in secrets:
        assert secret not in out and secret not in err, f"{secret} was shown"


# --- environment variables ---------------------------------------------------------------------


@st.composite
def environments(draw: st.DrawFn) -> tuple[dict[str, str], set[str]]:
    """Variables of known settings (any case), typos and unknown names, and the SDK's; a secret
    marker for every credential and every unknown name, whose value must never be shown."""
    env: dict[str, str] = {}
    secrets: set[str] = set()
    for field in draw(st.lists(st.sampled_from(FIELDS), max_size=8, unique=True)):
        name = PREFIX + field.upper()
        name = draw(st.sampled_from([name, name.lower()]))
        if field in SECRET_FIELDS:
            env[name] = draw(st.one_of(secret_values, st.just(""), st.just("  ")))
            secrets.add(env[name])
        else:
            env[name] = draw(st.one_of(plausible, env_text))
    for name in draw(
        st.lists(st.from_regex(r"DLI_MONITOR_[A-Z_]{1,16}", fullmatch=True), max_size=3)
    ):
        if name.removeprefix(PREFIX).lower() not in Settings.model_fields:
            env[name] = draw(secret_values)
            secrets.add(env[name])
    if draw(st.booleans()):
        env["HUAWEICLOUD_SDK_AK"], env["HUAWEICLOUD_SDK_SK"] = (
            draw(secret_values),
            draw(secret_values),
        )
        secrets |= {env["HUAWEICLOUD_SDK_AK"], env["HUAWEICLOUD_SDK_SK"]}
    return env, {s for s in secrets if s.strip()}


@fuzz(150)
@given(environments())
def test_any_environment_gives_an_exit_status_and_one_line(
    stub: str, generated: tuple[dict[str, str], set[str]]
) -> None:
    env, secrets = generated
    defaults = {f"{PREFIX}PROJECT_ID": "p1", f"{PREFIX}AUTH": "none"}  # most examples get far
    code, out, err = run_main(["check"], {**base_env(stub), **defaults, **env})
    assert_clean_outcome(code, out, err, secrets)


# --- TOML files ----------------------------------------------------------------------------------

toml_scalars = st.one_of(
    st.text(max_size=20),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(),
    st.booleans(),
    st.datetimes(),
    st.dates(),
    st.times(),
)
toml_values = st.recursive(
    toml_scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.from_regex(r"[a-z_]{1,8}", fullmatch=True), inner, max_size=3)
    ),
    max_leaves=8,
)


def toml_value(value: object) -> str:  # noqa: PLR0911 (one return per TOML type)
    """A TOML literal (a minimal writer: the standard library reads TOML, it does not write)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, str):
        return json.dumps(value)  # JSON's escapes are TOML basic-string escapes
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"


@st.composite
def toml_files(draw: st.DrawFn) -> tuple[bytes, set[str]]:
    secrets: set[str] = set()
    lines = []
    keys = draw(
        st.lists(
            st.sampled_from(FIELDS)
            | st.sampled_from(["secret", "secret_key", "password", "DLI_MONITOR_SK", "Queues"])
            | st.from_regex(r"[a-z_]{1,12}", fullmatch=True),
            max_size=8,
            unique_by=str.lower,
        )
    )
    for key in keys:
        known = key.lower() in Settings.model_fields
        if not known or key.lower().removeprefix("dli_monitor_") in SECRET_FIELDS:
            value: object = draw(secret_values)
            secrets.add(str(value))
        else:
            value = draw(st.one_of(plausible, toml_values))
        lines.append(f"{key} = {toml_value(value)}")
    # Most examples should get past the required settings to the rest of the rules.
    if draw(st.integers(0, 4)) and not {"project_id", "auth"} & {k.lower() for k in keys}:
        lines += ['project_id = "p1"', 'auth = "none"']
    text = "\n".join(lines) + "\n"
    if draw(st.integers(0, 9)) == 0:  # now and then, not TOML at all
        return draw(st.binary(max_size=40)) + text.encode(), secrets
    return text.encode(), secrets


@fuzz(150)
@given(toml_files())
def test_any_toml_file_gives_an_exit_status_and_one_line(
    stub: str, tmp_path: Path, generated: tuple[bytes, set[str]]
) -> None:
    content, secrets = generated
    path = tmp_path / "config.toml"
    path.write_bytes(content)
    code, out, err = run_main(["check", "--config", str(path)], base_env(stub))
    assert_clean_outcome(code, out, err, secrets)


# --- command-line flags ---------------------------------------------------------------------------

flag_values = st.one_of(
    plausible,
    env_text,  # no NUL: no command line can carry one
    st.integers(-10, 10**6).map(str),
    st.floats().map(str),
    st.floats(0.01, 5).map(str),
    st.integers(0, 50).map(str),
)
DEMO_FLAGS = ["--interval", "--seed", "--log-format", "--duration", "--listen", "--bogus"]


@fuzz(40)
@given(st.lists(st.tuples(st.sampled_from(DEMO_FLAGS), flag_values), max_size=4))
@example([("--bogus", "\x85")])  # NEL: a line break to str.splitlines, echoed by argparse
@example([("--bogus", "a\u2028b")])
def test_any_demo_flags_give_an_exit_status_and_one_line(
    flags: list[tuple[str, str]],
) -> None:
    argv = ["demo", *(part for pair in flags for part in pair)]
    # Last wins in argparse: a valid demo ends quickly, on a free loopback port.
    argv += ["--listen", "127.0.0.1:0", "--duration", "0.3", "--log-format", "json"]
    code, out, err = run_main(argv, dict(os.environ.items()))
    assert_clean_outcome(code, out, err, set())
    if code == 0:
        assert '"event":"monitor.stopping"' in out.splitlines()[-1]


SIMULATE_FLAGS = [
    "--jobs", "--active", "--seed", "--history", "--speed", "--arrival", "--throttle",
    "--retry-after", "--server-error", "--malformed", "--timeout-rate", "--latency", "--churn",
    "--total", "--state-case", "--page-cap", "--gateway-limit", "--queues", "--project-id",
]  # fmt: skip


@fuzz(20)
@given(st.lists(st.tuples(st.sampled_from(SIMULATE_FLAGS), flag_values), max_size=3))
def test_any_simulate_flags_give_an_exit_status_and_one_line(
    flags: list[tuple[str, str]],
) -> None:
    """The installed command: a valid simulator runs until SIGTERM, which must end it with 0."""
    args = ["simulate", "--host", "127.0.0.1", "--port", "0"]
    args += [part for pair in flags for part in pair]
    result = stop_after_first_line(args, stop_if=lambda line: line.startswith("simulating"))
    assert_clean_outcome(result.returncode, result.first_line + result.out, result.err, set())


# --- state files ----------------------------------------------------------------------------------


def _state(project_id: str) -> bytes:
    job = Job(id="job-1", state=JobState.RUNNING, queue="etl", update_time=1_000)
    snapshot = JobSnapshot.baseline([job], now_ms=2_000)
    return codec.encode(
        {"etl": snapshot}, project_id=project_id, endpoint="http://x", saved_at_ms=3_000
    )


@st.composite
def state_files(draw: st.DrawFn) -> bytes:
    good = _state("fuzzproject")
    kind = draw(st.sampled_from(["flipped", "truncated", "json", "bytes", "good"]))
    if kind == "flipped":
        at = draw(st.integers(0, len(good) - 1))
        return good[:at] + bytes([draw(st.integers(0, 255))]) + good[at + 1 :]
    if kind == "truncated":
        return good[: draw(st.integers(0, len(good) - 1))]
    if kind == "json":
        doc = draw(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                                lambda inner: st.lists(inner, max_size=3)
                                | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                                max_leaves=10))  # fmt: skip
        return json.dumps(doc).encode()
    if kind == "bytes":
        return draw(st.binary(max_size=60))
    return good


@fuzz(20)
@given(state_files())
def test_any_state_file_is_used_or_set_aside_and_run_starts(
    stub: str, tmp_path: Path, content: bytes
) -> None:
    """`run` (the installed command) over whatever is in the state file: it starts, says what it
    did with the file, and stops with 0 on SIGTERM."""
    state = tmp_path / "state.json"
    for leftover in tmp_path.iterdir():
        leftover.unlink()
    state.write_bytes(content)
    env = {
        **base_env(stub),
        f"{PREFIX}PROJECT_ID": "fuzzproject",
        f"{PREFIX}QUEUES": "etl",
        f"{PREFIX}AUTH": "none",
        f"{PREFIX}LISTEN": "127.0.0.1:0",
        f"{PREFIX}LOG_FORMAT": "json",
        f"{PREFIX}STATE_FILE": str(state),
    }
    result = stop_after_first_line(["run"], env=env)
    started = json.loads(result.first_line)
    assert (result.returncode, result.err) == (0, "")
    assert started["event"] == "monitor.started"
    status = started["state_file_status"]
    assert status.startswith(("loaded", "rejected")), status
    assert (started["level"] == "info") == status.startswith("loaded")
    assert json.loads(result.out.splitlines()[-1])["reason"] == "SIGTERM"
