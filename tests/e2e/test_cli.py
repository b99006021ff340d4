"""The command line as users meet it: exit codes, one-line errors, check, demo."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from monitor.app.config import ConfigError, load_settings
from tests.harness import free_port, stop_after_first_line

SECRET = "sk-S3CRET-0123456789"


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("DLI_MONITOR_", "HUAWEICLOUD_"))
    }
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


BASE_ENV = {
    "DLI_MONITOR_PROJECT_ID": "p1",
    "DLI_MONITOR_ENDPOINT": "http://127.0.0.1:9",
    "DLI_MONITOR_AUTH": "none",
}


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"DLI_MONITOR_PROJECT_ID": "not/valid"}, "DLI_MONITOR_PROJECT_ID"),
        ({"DLI_MONITOR_PROJECT_ID": "a" * 65}, "DLI_MONITOR_PROJECT_ID"),
        ({"DLI_MONITOR_POLL_INTERVAL": "0"}, "DLI_MONITOR_POLL_INTERVAL"),
        ({"DLI_MONITOR_PAGE_SIZE": "100000"}, "DLI_MONITOR_PAGE_SIZE"),
        ({"DLI_MONITOR_QUEUES": "etl,bad queue"}, "DLI_MONITOR_QUEUES"),
        ({"DLI_MONITOR_ENDPOINT": "ftp://x"}, "DLI_MONITOR_ENDPOINT"),
        ({"DLI_MONITOR_LISTEN": "nonsense"}, "DLI_MONITOR_LISTEN"),
        ({"DLI_MONITOR_AUTH": "kerberos"}, "DLI_MONITOR_AUTH"),
        ({"DLI_MONITOR_DURATION_BUCKETS": "10,5"}, "DLI_MONITOR_DURATION_BUCKETS"),
        ({"DLI_MONITOR_AUTH": "aksk"}, "DLI_MONITOR_AK"),
        ({"DLI_MONITOR_PROJECT_ID": ""}, "DLI_MONITOR_PROJECT_ID"),
    ],
)
def test_bad_config_exits_2_with_one_line_naming_the_setting(
    env: dict[str, str], named: str
) -> None:
    result = run_cli("run", env={**BASE_ENV, **env})
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_missing_project_id_is_named() -> None:
    result = run_cli("run", env={"DLI_MONITOR_AUTH": "none"})
    assert result.returncode == 2 and "DLI_MONITOR_PROJECT_ID" in result.stderr


def test_secret_values_never_echoed_in_config_errors() -> None:
    result = run_cli(
        "run",
        env={
            **BASE_ENV,
            "DLI_MONITOR_AUTH": "aksk",
            "DLI_MONITOR_SK": SECRET,
            "DLI_MONITOR_PAGE_SIZE": "0",
        },
    )
    assert result.returncode == 2
    assert SECRET not in result.stderr + result.stdout


def test_toml_config_file_and_env_precedence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "monitor.toml"
    config.write_text(
        'project_id = "fromfile"\nendpoint = "http://127.0.0.1:1"\nauth = "none"\n'
        'queues = "a,b"\npoll_interval = 5\n'
    )
    for key in list(os.environ):
        if key.startswith("DLI_MONITOR_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("DLI_MONITOR_POLL_INTERVAL", "7")
    settings = load_settings(config)
    assert settings.project_id == "fromfile" and settings.queues == ("a", "b")
    assert settings.poll_interval == 7.0  # the environment wins over the file
    config.write_text('project_id = "x"\nbogus = 1\n')
    with pytest.raises(ConfigError, match="DLI_MONITOR_BOGUS"):
        load_settings(config)
    with pytest.raises(ConfigError, match="no such file"):
        load_settings(tmp_path / "absent.toml")


def test_credentials_from_sdk_variables_and_secrets_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in list(os.environ):
        if key.startswith(("DLI_MONITOR_", "HUAWEICLOUD_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("DLI_MONITOR_REGION", "cn-north-4")
    monkeypatch.setenv("DLI_MONITOR_PROJECT_ID", "p1")
    monkeypatch.setenv("HUAWEICLOUD_SDK_AK", "AK1")
    monkeypatch.setenv("HUAWEICLOUD_SDK_SK", SECRET)
    settings = load_settings()
    assert settings.ak is not None and settings.ak.get_secret_value() == "AK1"
    assert settings.base_url == "https://dli.cn-north-4.myhuaweicloud.com"
    assert SECRET not in repr(settings) and SECRET not in str(settings.summary())
    monkeypatch.delenv("HUAWEICLOUD_SDK_AK")
    monkeypatch.delenv("HUAWEICLOUD_SDK_SK")
    (tmp_path / "dli_monitor_ak").write_text("AK2")
    (tmp_path / "dli_monitor_sk").write_text(SECRET)
    monkeypatch.setenv("DLI_MONITOR_SECRETS_DIR", str(tmp_path))
    settings = load_settings()
    assert settings.ak is not None and settings.ak.get_secret_value() == "AK2"


@pytest.fixture
def simulator() -> Iterator[str]:
    with spawn_simulator("--ak", "AK1", "--sk", SECRET) as url:
        yield url


@contextmanager
def spawn_simulator(*flags: str) -> Iterator[str]:
    """``dli-monitor simulate`` (project p1, queues etl and adhoc) with ``flags``, on loopback."""
    port = free_port()
    with subprocess.Popen(
        [sys.executable, "-m", "monitor", "simulate", "--port", str(port), "--project-id", "p1",
         "--queues", "etl,adhoc", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as proc:  # fmt: skip
        try:
            assert proc.stdout is not None
            assert "simulating" in proc.stdout.readline()
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(timeout=10)


@pytest.mark.parametrize(
    ("flags", "found", "deleted"),
    [
        ((), "total counts filtered rows; order honoured", "reported as job.vanished"),
        (
            ("--total", "project", "--ignore-order", "--default-order", "oldest"),
            "total does not count filtered rows (paging by rows); order ignored",
            "reported as job.vanished",
        ),
        (
            ("--state-case", "upper", "--deleted-answer", "404", "--ignore-state-filter"),
            "state filter ignored",
            "never reported vanished",
        ),
    ],
    ids=["seeds", "livy", "upper-404"],
)
def test_check_says_what_it_found_about_the_api(
    flags: tuple[str, ...], found: str, deleted: str
) -> None:
    with spawn_simulator("--jobs", "120", *flags) as url:
        env = {**BASE_ENV, "DLI_MONITOR_ENDPOINT": url, "DLI_MONITOR_QUEUES": "etl,nosuch"}
        result = run_cli("check", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    etl, nosuch, answer = result.stdout.splitlines()
    assert etl.startswith("etl: ok (60 jobs listed); ") and found in etl
    assert nosuch.startswith("nosuch: ok, but 0 jobs: is the queue name right?")
    assert answer.startswith("deleted jobs: answered HTTP") and deleted in answer
    if "--state-case" in flags:
        assert "states spelt like" in etl


def test_check_ok_per_queue_and_401_with_a_wrong_key(simulator: str) -> None:
    env = {
        "DLI_MONITOR_PROJECT_ID": "p1",
        "DLI_MONITOR_ENDPOINT": simulator,
        "DLI_MONITOR_QUEUES": "etl,adhoc",
        "DLI_MONITOR_AK": "AK1",
        "DLI_MONITOR_SK": SECRET,
    }
    ok = run_cli("check", env=env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.splitlines()[0].startswith("etl: ok")
    assert ok.stdout.splitlines()[1].startswith("adhoc: ok")
    bad = run_cli("check", env={**env, "DLI_MONITOR_SK": "wrong-secret-key"})
    assert bad.returncode == 1
    assert "FAILED HTTP 401 APIGW.0301" in bad.stdout and "DLI_MONITOR_SK" in bad.stdout
    assert "wrong-secret-key" not in bad.stdout + bad.stderr
    unsigned = run_cli("check", env={**env, "DLI_MONITOR_AUTH": "none"})
    assert unsigned.returncode == 1 and "401" in unsigned.stdout


def test_demo_runs_with_no_configuration_and_stops_cleanly() -> None:
    port = free_port()
    started = time.monotonic()
    result = run_cli(
        "demo",
        "--listen",
        f"127.0.0.1:{port}",
        "--log-format",
        "json",
        "--duration",
        "6",
        env={},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 30
    assert '"event":"job.transition"' in result.stdout
    assert '"event":"monitor.stopping"' in result.stdout.splitlines()[-1]


def test_sigterm_exits_0_within_5_seconds() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "monitor",
            "demo",
            "--listen",
            f"127.0.0.1:{port}",
            "--log-format",
            "json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if "monitor.baseline" in line:
            break
    proc.terminate()
    started = time.monotonic()
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert time.monotonic() - started < 5
    assert '"reason":"SIGTERM"' in out


def _catches(pid: int, signum: signal.Signals) -> bool:
    """Whether process ``pid`` has a handler of its own for ``signum`` (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    return False


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc (Linux)")
@pytest.mark.parametrize("command", ["run", "simulate", "demo"])
def test_sigterm_while_starting_is_a_graceful_stop(command: str) -> None:
    """`kubectl delete pod` may come while the process still imports: exit 0, never -15."""
    port = free_port()
    args = {
        "run": ["run"],
        "simulate": ["simulate", "--port", str(port)],
        "demo": ["demo", "--listen", f"127.0.0.1:{port}", "--log-format", "json"],
    }[command]
    env = {**BASE_ENV, "DLI_MONITOR_LISTEN": f"127.0.0.1:{port}", "DLI_MONITOR_LOG_FORMAT": "json"}
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DLI_MONITOR_")}
    with subprocess.Popen(
        [sys.executable, "-m", "monitor", *args],
        env={**clean, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        # As soon as the command can be signalled gracefully: the handler is its first statement,
        # so the signal lands during the imports that follow (they take most of a second).
        deadline = time.monotonic() + 20
        while not _catches(proc.pid, signal.SIGTERM):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.001)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, (out, err)
    assert "Traceback" not in err, err


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["demo", "--interval", "0"], "--interval"),
        (["demo", "--interval", "-1"], "--interval"),
        (["demo", "--interval", "nan"], "--interval"),
        (["demo", "--listen", "nope"], "--listen"),
        (["demo", "--duration", "soon"], "--duration"),
        (["simulate", "--throttle", "2"], "--throttle"),
        (["simulate", "--jobs", "-5"], "--jobs"),
        (["simulate", "--port", "70000"], "--port"),
        (["simulate", "--page-cap", "0"], "--page-cap"),
        (["simulate", "--queues", " , "], "--queues"),
        (["check", "--config"], "--config"),
        (["nonsense"], "COMMAND"),
    ],
)
def test_every_command_rejects_a_bad_flag_in_one_line(args: list[str], named: str) -> None:
    result = run_cli(*args, env={})
    assert result.returncode == 2, result
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and named in lines[0], result.stderr
    assert "Traceback" not in result.stderr and not result.stdout


def test_demo_never_reads_the_daemons_environment(tmp_path: Path) -> None:
    """Run by `kubectl exec` in the sidecar, the demo must leave the real daemon alone."""
    state = tmp_path / "state.json"
    state.write_text('{"the real daemon": "its state"}')
    env = {
        "DLI_MONITOR_STATE_FILE": str(state),
        "DLI_MONITOR_PAGE_SIZE": "0",  # invalid for the daemon: the demo never sees it
        "DLI_MONITOR_LISTEN": "not an address",
        "DLI_MONITOR_PROJECT_ID": "realproject",
    }
    port = free_port()
    result = run_cli(
        "demo", "--listen", f"127.0.0.1:{port}", "--log-format", "json", "--duration", "3", env=env
    )
    assert result.returncode == 0, result.stderr
    assert "realproject" not in result.stdout and '"state_file":null' in result.stdout
    assert state.read_text() == '{"the real daemon": "its state"}'
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"], "nothing set aside"


def test_simulate_stops_on_sigterm_within_5_seconds() -> None:
    result = stop_after_first_line(["simulate", "--port", str(free_port())])
    assert "simulating" in result.first_line
    assert result.returncode == 0, result.err
    assert result.stop_seconds < 5
    assert not result.err


@pytest.mark.parametrize("command", ["run", "simulate"])
def test_a_taken_port_is_a_listen_failure_exit_1(command: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        if command == "run":
            result = run_cli("run", env={**BASE_ENV, "DLI_MONITOR_LISTEN": f"127.0.0.1:{port}"})
        else:
            result = run_cli("simulate", "--port", str(port), env={})
    assert result.returncode == 1
    assert result.stderr == (
        f"dli-monitor: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    )


def test_a_closed_stdout_is_named_as_such_not_as_a_listen_failure() -> None:
    """`dli-monitor demo | head -1`: the reader goes away after one event."""
    port = free_port()
    with subprocess.Popen(
        [sys.executable, "-m", "monitor", "demo", "--listen", f"127.0.0.1:{port}",
         "--log-format", "json", "--interval", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:  # fmt: skip
        assert proc.stdout is not None and proc.stderr is not None
        assert "monitor.started" in proc.stdout.readline()
        proc.stdout.close()
        err = proc.stderr.read()
        proc.wait(timeout=30)
    assert proc.returncode == 1
    assert err == "dli-monitor: stdout was closed; no event can be written\n"


def test_a_typo_in_a_variable_is_one_warning_and_the_daemon_runs() -> None:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DLI_MONITOR_")},
        **BASE_ENV,
        "DLI_MONITOR_LISTEN": f"127.0.0.1:{port}",
        "DLI_MONITOR_LOG_FORMAT": "json",
        "DLI_MONITOR_POLL_INTERVALL": "5",
    }
    result = stop_after_first_line(["run"], env=env)
    assert "monitor.started" in result.first_line
    assert result.returncode == 0
    assert result.err == (
        "dli-monitor: warning: DLI_MONITOR_POLL_INTERVALL is not a known setting and is "
        "ignored; did you mean DLI_MONITOR_POLL_INTERVAL?\n"
    )
