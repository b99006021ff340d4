"""A pytest plugin that scans what the product writes during the whole suite for secrets.

Every secret the tests hand to the product carries the marker ``S3CRET``; no output may carry
it, nor a URL with credentials in it (``scheme://user:password@host``). Scanned, for every test:

- its captured stdout, stderr and log (what the product printed in-process);
- every event rendered by structlog in this process, whatever stream it goes to;
- every ``/metrics`` body the server encodes, and every state file the daemon encodes;
- the stdout and stderr of every run of the product in a subprocess that a test collects with
  ``subprocess.run`` or ``Popen.communicate`` (``python -m monitor``, the bench, ``podman
  logs`` of its container; not ``podman inspect``, which shows the environment it was given).

A leak fails the session with the test, the sink and the offending text; the summary says how
many outputs were scanned, so a scanner that silently saw nothing would show.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import structlog

import monitor.output.metrics
import monitor.state.codec

MARKER = "S3CRET"
#: a credential in a URL; "***@" is what redaction leaves, so it does not match
URL_CREDENTIALS = re.compile(
    r"[a-z][a-z0-9+.-]*://(?:[^/\s:@\"'<>]+:[^/\s\"'<>]+|\*\*\*@[^/\s\"'<>]*)@", re.IGNORECASE
)


def find_leaks(text: str) -> list[str]:
    """The secret markers and URL credentials in ``text`` (a little context with each)."""
    leaks = [text[max(0, m.start() - 20) : m.end() + 20] for m in re.finditer(MARKER, text)]
    leaks += [m.group(0) for m in URL_CREDENTIALS.finditer(text)]
    return leaks


@dataclass
class _Scan:
    test: str = "(collection)"
    scanned: dict[str, int] = field(default_factory=dict)
    leaks: list[tuple[str, str, str]] = field(default_factory=list)

    def check(self, sink: str, data: str | bytes | None) -> None:
        if not data:
            return
        text = data.decode(errors="replace") if isinstance(data, bytes) else data
        self.scanned[sink] = self.scanned.get(sink, 0) + 1
        self.leaks += [(self.test, sink, leak) for leak in find_leaks(text)]


SCAN = _Scan()


def _scanning_processor(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
    SCAN.check("event", repr(event))
    return event


def _wrap(original: Callable[..., Any], after: Callable[[Any], None]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        after(result)
        return result

    wrapper.__wrapped__ = original  # type: ignore[attr-defined]
    return wrapper


def _is_product(args: Any) -> bool:
    """A command line that runs the product: ``python -m monitor|bench``, ``dli-monitor``, or
    ``podman logs`` of its container."""
    argv = [str(a) for a in args] if isinstance(args, list | tuple) else str(args).split()
    return (
        "monitor" in argv
        or "bench" in argv
        or any(a.endswith("dli-monitor") for a in argv)
        or argv[1:2] == ["logs"]
    )


def _install() -> None:
    configure = structlog.configure

    def scanning_configure(*args: Any, **kwargs: Any) -> None:
        processors = kwargs.get("processors")
        if processors:  # just before the renderer: the event as it is written
            kwargs["processors"] = [*processors[:-1], _scanning_processor, processors[-1]]
        configure(*args, **kwargs)

    structlog.configure = scanning_configure
    # Every /metrics body the daemon renders (a scrape between polls reuses one of them).
    metrics: Any = monitor.output.metrics.Metrics
    metrics.expose = _wrap(metrics.expose, lambda body: SCAN.check("/metrics", body))
    monitor.state.codec.encode = _wrap(
        monitor.state.codec.encode, lambda data: SCAN.check("state file", data)
    )

    def scan_completed(result: subprocess.CompletedProcess[Any]) -> None:
        if _is_product(result.args):
            SCAN.check("subprocess stdout", result.stdout)
            SCAN.check("subprocess stderr", result.stderr)

    subprocess.run = _wrap(subprocess.run, scan_completed)
    communicate = subprocess.Popen.communicate

    def scanning_communicate(self: subprocess.Popen[Any], *args: Any, **kwargs: Any) -> Any:
        out, err = communicate(self, *args, **kwargs)
        if _is_product(self.args):
            SCAN.check("subprocess stdout", out)
            SCAN.check("subprocess stderr", err)
        return out, err

    subprocess.Popen.communicate = scanning_communicate  # type: ignore[method-assign]


def pytest_configure(config: pytest.Config) -> None:
    _install()


def pytest_runtest_logstart(nodeid: str, location: object) -> None:
    SCAN.test = nodeid


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for title, content in report.sections:
        if title.startswith("Captured"):
            SCAN.check(title.lower().replace(" ", "-"), content)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # a pytest-xdist worker: the controller reports for all
        workeroutput["leakscan"] = {"scanned": SCAN.scanned, "leaks": SCAN.leaks}
    if SCAN.leaks:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """pytest-xdist's controller: add up what each worker scanned and found."""
    report = getattr(node, "workeroutput", {}).get("leakscan")
    if report is None:
        return
    for sink, n in report["scanned"].items():
        SCAN.scanned[sink] = SCAN.scanned.get(sink, 0) + n
    SCAN.leaks += [tuple(leak) for leak in report["leaks"]]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    counts = ", ".join(f"{n} {sink}" for sink, n in sorted(SCAN.scanned.items()))
    terminalreporter.write_line(f"leak scan: {counts or 'nothing'} scanned")
    for test, sink, leak in SCAN.leaks:
        terminalreporter.write_line(f"LEAK in {sink} of {test}: {leak!r}", red=True)
