"""The metrics server as Prometheus and Kubernetes see it, with the real promtool/prometheus."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import aiohttp
import anyio
import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.app.config import Settings
from monitor.app.daemon import Daemon
from monitor.core.jobs import JobState
from monitor.output.events import configure_logging
from tests.conftest import require_tool
from tests.harness import SERVER_PROJECT, SERVER_QUEUES, get, running, running_daemon

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "dli-monitor.rules.yml"
PROJECT, QUEUES = SERVER_PROJECT, SERVER_QUEUES
CONTRACT = [
    "dli_batch_jobs",
    "dli_batch_job_transitions_total",
    "dli_batch_job_duration_seconds",
    "dli_batch_job_state_duration_seconds",
    "dli_batch_job_oldest_age_seconds",
    "dli_monitor_up",
    "dli_monitor_last_success_timestamp_seconds",
    "dli_monitor_poll_duration_seconds",
    "dli_monitor_api_requests_total",
    "dli_monitor_tracked_jobs",
    "dli_monitor_events_total",
    "dli_monitor_build_info",
]


@pytest.mark.needs("promtool")
async def test_text_format_carries_every_contract_metric_and_passes_promtool() -> None:
    async with running_daemon() as daemon:
        status, ctype, text = await get(daemon.addresses[0], "/metrics")
        assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
        for name in CONTRACT:
            assert f"\n{name}" in text or text.startswith(name), name
        samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
        jobs = {
            (s.labels["queue"], s.labels["state"]) for s in samples if s.name == "dli_batch_jobs"
        }
        assert jobs == {(q, s.value) for q in QUEUES for s in JobState}
        unscoped = [s for s in samples if s.labels.get("project_id") != PROJECT]
        assert not unscoped, "every series carries the project"
        assert "job_id" not in text, "no job id as a label, and no exemplars outside OpenMetrics"
        lint = await anyio.run_process(
            [require_tool("promtool"), "check", "metrics"], input=text.encode(), check=False
        )
        said = (lint.stdout + lint.stderr).decode()
        assert lint.returncode == 0 and not said.strip(), said


async def test_openmetrics_on_request_with_job_id_exemplars() -> None:
    async with running_daemon() as daemon:
        status, ctype, text = await get(
            daemon.addresses[0], "/metrics", "application/openmetrics-text; version=1.0.0"
        )
        assert status == 200 and ctype.startswith("application/openmetrics-text")
        assert text.rstrip().endswith("# EOF")
        assert any(
            "dli_batch_job_transitions_total{" in line and '# {job_id="' in line
            for line in text.splitlines()
        )


async def test_probes_and_landing_page() -> None:
    async with running_daemon() as daemon:
        address = daemon.addresses[0]
        assert (await get(address, "/healthz"))[0] == 200
        assert (await get(address, "/readyz"))[0] == 200
        status, ctype, body = await get(address, "/")
        assert status == 200 and ctype.startswith("text/html") and 'href="/metrics"' in body


async def test_not_ready_until_polled_but_alive() -> None:
    configure_logging("json", io.StringIO())
    # Nothing listens on port 9 of loopback: every poll fails, and is retried on schedule.
    d = Daemon(
        Settings(
            project_id="p",
            endpoint="http://127.0.0.1:9",
            queues=("etl",),
            poll_interval=0.2,
            auth="none",
            listen="127.0.0.1:0",
            request_timeout=0.5,
        )
    )
    async with running(d, ready=False):
        await anyio.sleep(0.5)
        ready = await get(d.addresses[0], "/readyz")
        live = await get(d.addresses[0], "/healthz")
        _, _, metrics = await get(d.addresses[0], "/metrics")
    assert ready[0] == 503 and "etl" in ready[2]
    assert live[0] == 200
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(metrics)
        for s in f.samples
    }
    up = (("project_id", "p"), ("queue", "etl"), ("region", ""))
    assert samples["dli_monitor_up", up] == 0
    errors = (("code", "error"), ("endpoint", "list"), ("project_id", "p"), ("region", ""))
    assert samples["dli_monitor_api_requests_total", errors] > 0


async def test_no_created_series_and_only_series_that_can_move() -> None:
    async with running_daemon() as daemon:
        _, _, text = await get(daemon.addresses[0], "/metrics")
    samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
    assert not [s.name for s in samples if s.name.endswith("_created")]
    run_time = {s.labels["state"] for s in samples if s.name.startswith("dli_batch_job_duration_")}
    assert run_time == {"success", "dead"}, "run time is observed at a terminal state only"
    in_state = {
        s.labels["state"] for s in samples if s.name.startswith("dli_batch_job_state_duration_")
    }
    assert in_state == {"starting", "running", "recovering"}, "terminal states are never left"


@pytest.mark.needs("promtool")
async def test_gzip_on_request_and_promtool_accepts_every_byte() -> None:
    async with running_daemon() as daemon, aiohttp.ClientSession(auto_decompress=False) as s:
        url = f"http://{daemon.addresses[0]}/metrics"
        async with s.get(url, headers={"Accept-Encoding": "gzip"}) as response:
            assert response.headers["Content-Encoding"] == "gzip"
            body = gzip.decompress(await response.read())
    lint = await anyio.run_process(
        [require_tool("promtool"), "check", "metrics"], input=body, check=False
    )
    assert lint.returncode == 0 and not (lint.stdout + lint.stderr).strip()
    assert b"dli_batch_jobs{" in body
