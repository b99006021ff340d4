"""/metrics is rendered once per change: scrapes between polls reuse the bytes."""

from __future__ import annotations

import gzip
from collections.abc import Iterable
from typing import cast

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.openmetrics import exposition as openmetrics_exposition
from prometheus_client.registry import Collector

from monitor.core.jobs import Job, JobState
from monitor.core.snapshot import Discovered, StateSummary, Transition
from monitor.output.exposition import Encoder, Exposition, RegistrySource
from monitor.output.metrics import Metrics
from monitor.output.scope import Scope
from tests.fakes import FakeClock

OPENMETRICS = "application/openmetrics-text; version=1.0.0"


class Counting(Collector):
    """A scrape-time collector that counts how often it is asked."""

    def __init__(self) -> None:
        self.collected = 0

    def collect(self) -> Iterable[Metric]:
        self.collected += 1
        family = GaugeMetricFamily("ask_count", "How often this was collected.")
        family.add_metric([], self.collected)
        yield family


def setup(max_age: float = 30) -> tuple[Exposition, Counting, Counter, FakeClock]:
    registry = CollectorRegistry()
    counting = Counting()
    registry.register(counting)
    counter = Counter("polls", "Polls.", registry=registry)
    clock = FakeClock(0.0)
    return (
        Exposition(RegistrySource(registry), max_age=max_age, clock=clock),
        counting,
        counter,
        clock,
    )


def test_scrapes_between_changes_reuse_the_rendering() -> None:
    exposition, counting, counter, _ = setup()
    first = exposition.render("", "")
    counter.inc()  # not yet announced: the scrape may lag by up to one poll
    assert exposition.render("", "") == first
    assert counting.collected == 1 and exposition.renders == 1
    exposition.changed()
    body, content_type, zipped = exposition.render("", "")
    assert b"polls_total 1.0" in body and content_type.startswith("text/plain") and not zipped
    assert exposition.renders == 2


def test_each_format_and_encoding_is_rendered_once_and_gzip_is_the_same_bytes() -> None:
    exposition, _, _, _ = setup()
    text, _, _ = exposition.render("", "")
    zipped, _, is_zipped = exposition.render("", "gzip, deflate")
    openmetrics, content_type, _ = exposition.render(OPENMETRICS, "")
    for _ in range(3):
        exposition.render("", "gzip")
        exposition.render(OPENMETRICS, "")

    def samples(body: bytes) -> list[bytes]:  # without the collection counter, which moved
        return [line for line in body.splitlines() if not line.startswith(b"ask_count ")]

    assert is_zipped and samples(gzip.decompress(zipped)) == samples(text)
    assert content_type.startswith("application/openmetrics-text")
    assert openmetrics.endswith(b"# EOF\n")
    assert exposition.renders == 3


def test_scrape_time_values_are_never_older_than_max_age() -> None:
    exposition, counting, _, clock = setup(max_age=30)
    exposition.render("", "")
    clock.advance(29)
    exposition.render("", "")
    assert counting.collected == 1
    clock.advance(1)
    exposition.render("", "")
    assert counting.collected == 2


def test_the_daemon_s_metrics_expose_what_prometheus_client_renders_of_them() -> None:
    """Our families render themselves; prometheus-client renders the same registry, and every
    byte must agree, in both formats, with exemplars, escapes and level series."""
    clock = FakeClock(1_800_000_000.0)
    metrics = Metrics("1.2.3", clock=clock)
    target = metrics.for_scope(Scope("proj", "cn-north-4"))
    for queue in ("etl", 'odd"queue\\'):
        target.init_queue(queue)
        target.init_target(queue)
        target.poll_succeeded(queue, 1_799_999_990.5)
        target.poll_took(queue, 0.3)
        job = Job("job-1", JobState.DEAD, queue, duration_ms=61_000)
        target.record(queue, Transition(job, JobState.RUNNING, JobState.DEAD, False, 60.5, 61_000))
        target.record(queue, Discovered(Job("job-2", JobState.SUCCESS, queue, duration_ms=5)))
        target.rows_rejected(queue, "unknown_state", 2)
    target.api_response("list", "200")
    target.event_written("job.transition")

    class View:
        scope = Scope("proj", "cn-north-4")
        export_queues = ("etl", "idle")
        summary = StateSummary(
            {("etl", JobState.RUNNING): 3}, {("etl", JobState.RUNNING): 1_799_999_000_000}
        )
        tracked_jobs = 3

    metrics.add_views(lambda: [View()])
    openmetrics = cast("Encoder", openmetrics_exposition.generate_latest)
    for encoder, om in ((generate_latest, False), (openmetrics, True)):
        body = metrics.expose(encoder, openmetrics=om)
        assert body == encoder(metrics.registry)
        oldest = (
            b'dli_batch_job_oldest_age_seconds{project_id="proj",queue="etl",region="cn-north-4",'
        )
        assert oldest + b'state="running"} 1000.0\n' in body
    assert b'# {job_id="job-1"} 61.0 ' in metrics.expose(openmetrics, openmetrics=True)
