"""A real Prometheus server scraping real daemons, with the shipped recording rules loaded."""

from __future__ import annotations

import io
import time
from contextlib import AsyncExitStack
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.app.config import Settings
from monitor.app.daemon import Daemon
from monitor.core.jobs import ACTIVE_STATES, JobState
from monitor.output.events import configure_logging
from monitor.simulator import Simulator, World, running_simulator
from tests.harness import SERVER_QUEUES as QUEUES
from tests.harness import STILL, get, running, running_daemon, running_prometheus, until


@pytest.mark.needs("prometheus")
async def test_a_real_prometheus_scrapes_every_series() -> None:
    async with running_daemon() as daemon, running_prometheus(daemon.addresses) as query:
        series = [r["metric"] for r in await until(query, "dli_batch_jobs", len(QUEUES) * 5)]
        up = await until(query, "up", 1)
        recorded = await until(query, "queue:dli_batch_jobs_active:sum", len(QUEUES))
    assert {(s["queue"], s["state"]) for s in series} == {
        (q, st.value) for q in QUEUES for st in JobState
    }
    assert up[0]["value"][1] == "1"
    assert {r["metric"]["queue"] for r in recorded} == set(QUEUES)
    assert all(float(r["value"][1]) >= 0 for r in recorded)


async def _active_counts(address: str) -> dict[tuple[str, str], float]:
    """Active jobs per (project, queue), as one daemon exports them."""
    _, _, text = await get(address, "/metrics")
    counts: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "dli_batch_jobs" and JobState(s.labels["state"]) in ACTIVE_STATES:
                key = (s.labels["project_id"], s.labels["queue"])
                counts[key] = counts.get(key, 0) + s.value
    return counts


@pytest.mark.needs("prometheus")
async def test_recording_rules_keep_two_projects_with_the_same_queues_apart() -> None:
    """Two daemons, two projects, both with queues etl and adhoc: every recorded series is one
    project's own, equal to what that project's daemon exports."""
    configure_logging("json", io.StringIO())
    now_ms = int(time.time() * 1000)
    async with AsyncExitStack() as stack:
        daemons = []
        for project, seed, jobs in (("projecta", 1, 25), ("projectb", 2, 60)):
            world = World(project, QUEUES, seed=seed, now_ms=now_ms, lifecycle=STILL,
                          initial_jobs=jobs)  # fmt: skip
            url = await stack.enter_async_context(running_simulator(Simulator(world)))
            settings = Settings(project_id=project, endpoint=url, queues=QUEUES,
                                poll_interval=0.5, auth="none", listen="127.0.0.1:0")  # fmt: skip
            daemons.append(Daemon(settings))
            await stack.enter_async_context(running(daemons[-1]))
        addresses = [d.addresses[0] for d in daemons]
        query = await stack.enter_async_context(running_prometheus(addresses))
        pairs = 2 * len(QUEUES)
        active = await until(query, "queue:dli_batch_jobs_active:sum", pairs)
        ratio = await until(query, "queue:dli_batch_job_failure_ratio:1h", pairs)
        exported: dict[tuple[str, str], float] = {}
        for address in addresses:
            exported |= await _active_counts(address)

    def by_pair(rows: list[dict[str, Any]]) -> dict[tuple[str, str], float]:
        return {
            (r["metric"]["project_id"], r["metric"]["queue"]): float(r["value"][1]) for r in rows
        }

    assert by_pair(active) == exported, "each project's own count, never the two added up"
    assert len(exported) == pairs and len(set(exported.values())) > 1
    assert by_pair(ratio) == dict.fromkeys(exported, 0.0), "0 for healthy queues, not no data"
