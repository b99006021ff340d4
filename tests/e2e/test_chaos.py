"""The daemon under every fault a real cloud API produces, judged against ground truth.

Each scenario runs the daemon against the simulator over loopback with one fault (and then all of
them together) and requires precision and recall of 100%: every reported state sequence is an
in-order subsequence of the true one with no repeats, and every state that lasted long enough
for a poll to see it (two poll intervals plus the fault's worst delay) is reported.

The second half runs the same judgement on each way real DLI may differ from the seeds' reading
(:class:`ApiVariant`: what ``total`` counts, order, state spelling, error shapes, ignored
filters, the answer for a deleted job, a page cap), alone and all at once, with paging churn and
faults on top, in full and incremental mode.
"""

from __future__ import annotations

import io
import time
import zlib
from dataclasses import replace

import anyio
import pytest

from monitor.app.config import Settings
from monitor.app.daemon import Daemon
from monitor.core.jobs import JobState
from monitor.output.events import configure_logging
from monitor.poll.poller import QueuePoller
from monitor.poll.strategy import IncrementalStrategy
from monitor.simulator import (
    ApiVariant,
    Faults,
    Lifecycle,
    Simulator,
    World,
    running_simulator,
)
from tests.harness import running
from tests.polltimes import timing_polls
from tests.truth import compare, parse_events

PROJECT = "chaosproject"
QUEUES = ("etl", "adhoc", "ml")
INTERVAL = 0.25
# Some states are shorter than a poll interval, so jobs skip states between polls.
LIFECYCLE = Lifecycle(
    starting=(0.05, 2.5),
    running=(0.1, 4.0),
    recovering=(0.1, 2.0),
    arrival_interval=0.6,
    p_recovery=0.3,
)
# How long a state must last to be certainly seen is measured in each run from the applied
# polls' own timing (tests/polltimes.py): it grows with what the faults cost a poll (retries,
# timeouts, restarted passes) and with a loaded machine, so no scenario carries a constant.
SCENARIOS: dict[str, Faults] = {
    "throttled": Faults(throttle=0.15, retry_after=0.1),
    "server-errors": Faults(server_error=0.15),
    "latency": Faults(latency=0.05),
    "timeouts": Faults(timeout=0.05, timeout_seconds=5),
    "malformed-pages": Faults(malformed=0.15),
    # half the list requests move rows, so passes see rows shift and restart
    "paging-churn": Faults(churn=0.5),
    "everything": Faults(
        throttle=0.05,
        retry_after=0.1,
        server_error=0.05,
        latency=0.02,
        timeout=0.02,
        timeout_seconds=5,
        malformed=0.05,
        churn=0.3,
    ),
}


CASES = [(name, "full") for name in SCENARIOS] + [
    (name, "incremental") for name in ("malformed-pages", "paging-churn", "everything")
]

#: on top of every API variant: churn, and faults whose retries the variant shapes
VARIANT_FAULTS = Faults(throttle=0.03, retry_after=0.1, server_error=0.05, churn=0.3)
VARIANTS: dict[str, ApiVariant] = {
    "livy-total": ApiVariant(total="project"),
    "no-total": ApiVariant(total="missing"),
    "oldest-first-order-ignored": ApiVariant(default_order="oldest", ignore_order=True),
    "title-case-states": ApiVariant(state_case="title"),
    "upper-case-states": ApiVariant(state_case="upper"),
    "errors-as-400-other-shapes": ApiVariant(
        server_error_status=400, throttle_code="APIG.0308", error_style="code"
    ),
    "state-filter-ignored": ApiVariant(ignore_state_filter=True),
    "time-filter-ignored": ApiVariant(ignore_time_filter=True),
    "queue-filter-ignored": ApiVariant(ignore_queue_filter=True),
    "deleted-is-bare-404": ApiVariant(deleted_answer="404"),
    "page-cap": ApiVariant(page_cap=4),
    "all-at-once": ApiVariant(
        total="project",
        default_order="oldest",
        ignore_order=True,
        state_case="title",
        ignore_state_filter=True,
        ignore_time_filter=True,
        ignore_queue_filter=True,
        server_error_status=400,
        throttle_code="APIG.0308",
        error_style="nested",
        deleted_answer="DLI.0001",
        page_cap=5,
    ),
}
VARIANT_CASES = [(name, mode) for name in VARIANTS for mode in ("full", "incremental")]


@pytest.mark.parametrize(("scenario", "strategy"), CASES)
async def test_events_match_ground_truth_under_faults(
    scenario: str, strategy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await judge(scenario, strategy, SCENARIOS[scenario], ApiVariant(), monkeypatch)


@pytest.mark.parametrize(("variant", "strategy"), VARIANT_CASES)
async def test_events_match_ground_truth_on_every_api_variant(
    variant: str, strategy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await judge(variant, strategy, VARIANT_FAULTS, VARIANTS[variant], monkeypatch, seconds=5)


#: short, so that recounts happen under the faults too, and one soon after the world is frozen
RECOUNT_INTERVAL = 2.0


def counted_before(poller: QueuePoller, at: float) -> bool:
    """The poller's terminal counts may be older than ``at`` (incremental polls keep counts
    between recounts; a full listing counts every poll)."""
    if not isinstance(poller.strategy, IncrementalStrategy):
        return False
    counted = poller.resume_state.counted_at_ms
    return counted is None or counted / 1000 < at


async def judge(
    scenario: str,
    strategy: str,
    faults: Faults,
    variant: ApiVariant,
    monkeypatch: pytest.MonkeyPatch,
    *,
    seconds: float = 8,
) -> None:
    """Run the daemon through ``faults`` on ``variant``; require 100% precision and recall."""
    out = io.StringIO()
    configure_logging("json", out, level="debug")  # retries are the evidence
    world = World(
        PROJECT,
        QUEUES,
        seed=zlib.crc32(scenario.encode()) % 1000,
        now_ms=int(time.time() * 1000),
        lifecycle=LIFECYCLE,
        initial_jobs=30,
        history_limit=15,
    )
    sim = Simulator(world, seed=7, faults=Faults(), variant=variant)
    async with running_simulator(sim) as url:
        daemon = Daemon(
            Settings(
                project_id=PROJECT,
                endpoint=url,
                queues=QUEUES,
                poll_interval=INTERVAL,
                auth="none",
                listen="127.0.0.1:0",
                max_rps=1000,
                page_size=7,
                request_timeout=0.4,
                poll_strategy=strategy,
                recount_interval=RECOUNT_INTERVAL,
            )
        )
        with timing_polls(monkeypatch) as polls:
            async with running(daemon):
                baseline_ms = world.now_ms
                sim.faults = replace(faults)
                await anyio.sleep(seconds)
                sim.faults = Faults()  # calm down, freeze the world, let the daemon catch up
                end_ms = world.now_ms
                sim.world.lifecycle = replace(LIFECYCLE, arrival_interval=0)
                frozen = time.time()
                sim._clock = lambda: frozen
                await polls.settle(after=frozen)
                # The terminal gauges may lag history expiry until the next recount: wait for
                # one that counted the frozen world.
                with anyio.fail_after(RECOUNT_INTERVAL + 10 * INTERVAL + 5):
                    while any(counted_before(p, frozen) for p in daemon.pollers):
                        await anyio.sleep(INTERVAL / 4)
    events = parse_events(out.getvalue())
    min_seen_ms = polls.min_seen_ms(PROJECT, after_ms=baseline_ms)
    verdict = compare(
        events, world.history, baseline_ms=baseline_ms, end_ms=end_ms, min_seen_ms=min_seen_ms
    )
    scopes = [e["strategy"] for e in events if e["event"] == "poll.strategy" and e["queue"] == "*"]
    print(f"{scenario} ({strategy}): {verdict}; certainly seen when lasting {min_seen_ms} ms")
    print(f"  rounds: {' then '.join(scopes) or 'each queue alone'}")
    if strategy == "incremental" and all(
        isinstance(p.strategy, IncrementalStrategy) for p in daemon.pollers
    ):
        assert "project-wide" in scopes, "three quiet queues: one project-wide pass a round"
    assert verdict.expected > 30
    assert verdict.precision == 1.0, str(verdict)
    assert verdict.recall == 1.0, str(verdict)
    # What dli_batch_jobs exports: the snapshot's counts, or the terminal counts an
    # incremental poller keeps, as of a recount after the world was frozen.
    exported: dict[tuple[str, JobState], int] = {}
    for poller in daemon.pollers:
        assert poller.summary is not None
        exported.update(poller.summary.counts)
    for queue in QUEUES:
        for state, count in world.counts(queue).items():
            assert exported.get((queue, state), 0) == count, (scenario, queue, state)
    if scenario != "latency":
        assert any(e["event"] == "poll.failed" for e in events) or scenario == "paging-churn"
    # Paging ends on the rows: never more than one request past the end of the data per pass.
    print(f"  {sim.pages_past_end} pages past the end in {sim.first_pages} passes")
    assert sim.pages_past_end <= sim.first_pages
