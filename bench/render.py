"""Figure 5a: rendering ``/metrics`` after a round of polls, against prometheus-client's
rendering of the same registry and against joining the same lines."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import cast

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics import exposition as openmetrics_exposition

from bench.common import (
    PROJECT,
    best,
    figures,
    row,
)
from monitor.core.jobs import Job, JobState
from monitor.core.snapshot import StateSummary, Transition
from monitor.output.exposition import Encoder, Exposition
from monitor.output.metrics import Metrics, TargetMetrics
from monitor.output.scope import Scope


class _Clock:
    now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


clock = _Clock()


def _poll_round(target: TargetMetrics, names: list[str], at: float) -> None:
    """What a round of polls changes: every queue's self metrics, and a job that finished in
    one queue out of ten (and the clock, which ages the oldest jobs)."""
    clock.now = at
    for i, name in enumerate(names):
        target.poll_succeeded(name, at)
        target.poll_took(name, 0.05)
        if i % 10 == 0:
            job = Job(f"job-{at}-{i}", JobState.SUCCESS, name, duration_ms=600_000)
            target.record(
                name, Transition(job, JobState.RUNNING, JobState.SUCCESS, False, 300, 600_000)
            )


def bench_render(queues: int) -> None:
    print(f"\n5a. /metrics render with {queues} queues")
    metrics = Metrics("bench", clock=clock)
    scope = Scope(PROJECT)
    target = metrics.for_scope(scope)
    names = [f"queue{i:03d}" for i in range(queues)]
    for name in names:
        target.init_queue(name)
        target.init_target(name)
    counts = {(n, s): 10 for n in names for s in JobState}

    class View:
        scope = Scope(PROJECT)
        export_queues = names
        summary = StateSummary(counts, {(n, JobState.RUNNING): 1_700_000_000_000 for n in names})
        tracked_jobs = 10 * queues * 5

    metrics.add_views(lambda: [View()])
    openmetrics = cast(
        "Callable[[CollectorRegistry], bytes]", openmetrics_exposition.generate_latest
    )
    start = time.perf_counter()
    body = metrics.expose(generate_latest, openmetrics=False)
    cold = time.perf_counter() - start
    assert body == generate_latest(metrics.registry), "the same bytes as prometheus-client's"
    lines = [ln for ln in body.decode().splitlines() if not ln.startswith("#")]
    floor = best(lambda: "\n".join(f"{ln}" for ln in lines).encode(), repeat=10)
    reference = best(lambda: generate_latest(metrics.registry), repeat=3)
    reference_om = best(lambda: openmetrics(metrics.registry), repeat=3)
    at = iter(range(1_800_000_000, 1_900_000_000))
    changes = best(lambda: _poll_round(target, names, next(at)), repeat=10)

    def after_a_poll(fmt: Encoder, *, om: bool) -> float:
        def run() -> None:
            _poll_round(target, names, next(at))
            metrics.expose(fmt, openmetrics=om)

        return best(run, repeat=10) - changes

    text, om = after_a_poll(generate_latest, om=False), after_a_poll(openmetrics, om=True)
    row("floor: joining the same sample lines", f"{floor * 1e3:.2f} ms", "1.00x")
    row(
        "prometheus-client's generate_latest (before)",
        f"{reference * 1e3:.1f} ms",
        f"{reference / floor:.1f}x",
        f"OpenMetrics {reference_om * 1e3:.1f} ms; {len(lines):,} samples, {len(body) >> 10} KiB",
    )
    row("first render (every series)", f"{cold * 1e3:.1f} ms", f"{cold / floor:.1f}x")
    row(
        "render after a round of polls, text",
        f"{text * 1e3:.2f} ms",
        f"{text / floor:.2f}x",
        f"OpenMetrics {om * 1e3:.2f} ms; the round's own changes {changes * 1e3:.2f} ms",
    )
    exposition = Exposition(metrics, max_age=30)
    exposition.render("", "")
    cached = best(lambda: exposition.render("", ""), repeat=10)
    row(
        "a scrape between polls (rendered once per change)",
        f"{cached * 1e6:.1f} µs",
        f"{cached / floor:.4f}x",
        "served from the last rendering",
    )
    figures.update(
        render_ms_200_queues=round(text * 1e3, 2),
        render_openmetrics_ms_200_queues=round(om * 1e3, 2),
        render_cold_ms_200_queues=round(cold * 1e3, 2),
        render_prometheus_client_ms_200_queues=round(reference * 1e3, 2),
        render_samples=len(lines),
        cached_scrape_us=round(cached * 1e6, 1),
    )
