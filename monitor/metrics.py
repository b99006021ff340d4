"""The contract's Prometheus metrics.

Event-driven series (transitions, durations, self metrics) are ordinary prometheus-client
metrics updated as the poller publishes changes. Level series (``dli_batch_jobs``, oldest age,
tracked jobs) are read from the pollers' snapshots at scrape time by :class:`SnapshotCollector`,
so they can never drift from the snapshot they describe.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol, assert_never

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.behaviour import ApiBehaviour
from monitor.dli.models import ACTIVE_STATES, JobState
from monitor.snapshot import (
    DIRECT_EDGES,
    Change,
    Discovered,
    Forgotten,
    StateSummary,
    Transition,
    Vanished,
)

__all__ = [
    "DEFAULT_DURATION_BUCKETS",
    "BehaviourCollector",
    "Metrics",
    "SnapshotCollector",
    "SnapshotView",
]

#: 10 s … 24 h: Spark batch jobs take from seconds to a day.
DEFAULT_DURATION_BUCKETS: tuple[float, ...] = (
    10,
    30,
    60,
    120,
    300,
    600,
    900,
    1800,
    3600,
    7200,
    14400,
    28800,
    43200,
    86400,
)
_POLL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class SnapshotView(Protocol):
    """What the collector needs from a poller: its queues and its snapshot's summary."""

    @property
    def export_queues(self) -> Iterable[str]: ...

    @property
    def summary(self) -> StateSummary | None: ...

    @property
    def tracked_jobs(self) -> int: ...


class SnapshotCollector(Collector):
    """Collects ``dli_batch_jobs``, ``dli_batch_job_oldest_age_seconds`` and
    ``dli_monitor_tracked_jobs`` from the pollers' snapshots at scrape time."""

    def __init__(
        self, views: Callable[[], Iterable[SnapshotView]], clock: Callable[[], float] = time.time
    ) -> None:
        self._views = views
        self._clock = clock

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterable[Metric]:
        views = list(self._views())
        return self._families(views)

    def _families(self, views: Sequence[SnapshotView] = ()) -> Iterator[Metric]:
        jobs = GaugeMetricFamily(
            "dli_batch_jobs",
            "Jobs the DLI API currently lists in each state (terminal states as far back as the "
            "API's history reaches).",
            labels=["queue", "state"],
        )
        oldest = GaugeMetricFamily(
            "dli_batch_job_oldest_age_seconds",
            "Seconds the longest-waiting job now in each active state has been in it (from the "
            "API's update_time, else the poll time at which the state was first seen); 0 if none.",
            labels=["queue", "state"],
        )
        tracked = GaugeMetricFamily(
            "dli_monitor_tracked_jobs", "Jobs held in the monitor's snapshots."
        )
        now_ms = self._clock() * 1000
        total = 0
        for view in views:
            summary = view.summary
            total += view.tracked_jobs
            queues = set(view.export_queues)
            if summary is not None:
                queues |= summary.queues()
            for queue in sorted(queues):
                for state in JobState:
                    count = summary.counts.get((queue, state), 0) if summary else 0
                    jobs.add_metric([queue, state.value], count)
                    if state in ACTIVE_STATES:
                        since = summary.oldest_since_ms.get((queue, state)) if summary else None
                        age = max(0.0, (now_ms - since) / 1000) if since is not None else 0.0
                        oldest.add_metric([queue, state.value], age)
        tracked.add_metric([], total)
        yield jobs
        yield oldest
        yield tracked


class Metrics:
    """All of the daemon's metrics, on one registry (not the process-global one)."""

    def __init__(
        self,
        version: str,
        buckets: Sequence[float] = DEFAULT_DURATION_BUCKETS,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.transitions = Counter(
            "dli_batch_job_transitions",
            'Observed job state transitions; from_state="new" for a job first seen after start-up.',
            ["queue", "from_state", "to_state"],
            registry=r,
        )
        self.job_duration = Histogram(
            "dli_batch_job_duration_seconds",
            "A job's total run time, observed once when it reaches success or dead (the API's "
            "duration, else update_time - create_time).",
            ["queue", "state"],
            buckets=buckets,
            registry=r,
        )
        self.state_duration = Histogram(
            "dli_batch_job_state_duration_seconds",
            "Time a job spent in a state, observed when it leaves it (starting = start latency); "
            "from the API's update_time, else poll times.",
            ["queue", "state"],
            buckets=buckets,
            registry=r,
        )
        self.up = Gauge(
            "dli_monitor_up", "1 when the last poll of the queue succeeded.", ["queue"], registry=r
        )
        self.last_success = Gauge(
            "dli_monitor_last_success_timestamp_seconds",
            "Unix time of the last successful poll of the queue.",
            ["queue"],
            registry=r,
        )
        self.poll_duration = Histogram(
            "dli_monitor_poll_duration_seconds",
            "Wall time of one poll of the queue, retries included.",
            ["queue"],
            buckets=_POLL_BUCKETS,
            registry=r,
        )
        self.api_requests = Counter(
            "dli_monitor_api_requests",
            'Requests to the DLI API by endpoint and HTTP status (code="error": no response).',
            ["endpoint", "code"],
            registry=r,
        )
        self.malformed = Counter(
            "dli_monitor_malformed_responses",
            "API responses that could not be read (bad JSON, wrong types) by endpoint.",
            ["endpoint"],
            registry=r,
        )
        self.rejected_rows = Counter(
            "dli_monitor_rejected_rows",
            'List rows skipped: reason="malformed" (no id/state) or "unknown_state".',
            ["queue", "reason"],
            registry=r,
        )
        self.events = Counter(
            "dli_monitor_events", "Events written to the event stream.", ["event"], registry=r
        )
        # prometheus-client adds the suffix: this is exported as dli_monitor_build_info{version}.
        Info("dli_monitor_build", "Version of dli-monitor.", registry=r).info({"version": version})

    def add_views(self, views: Callable[[], Iterable[SnapshotView]]) -> None:
        """Register the scrape-time collector over the pollers' snapshots."""
        self.registry.register(SnapshotCollector(views))

    def add_behaviour(self, behaviour: Callable[[], ApiBehaviour]) -> None:
        """Register ``dli_monitor_api_behaviour_info`` over the current behaviour."""
        self.registry.register(BehaviourCollector(behaviour))

    def init_target(self, label: str) -> None:
        """Create a poller's self-metric series (``dli_monitor_up`` starts at 0: not polled yet)."""
        self.up.labels(label)
        self.last_success.labels(label)
        self.poll_duration.labels(label)

    def init_queue(self, queue: str) -> None:
        """Create every per-queue job series at zero, so ``absent()`` and ``rate()`` behave."""
        for state in JobState:
            self.transitions.labels(queue, "new", state.value)
            self.state_duration.labels(queue, state.value)
            if state.terminal:
                self.job_duration.labels(queue, state.value)
        for old, new in DIRECT_EDGES:
            self.transitions.labels(queue, old.value, new.value)

    def record(self, queue: str, change: Change) -> None:
        """Count one published change."""
        job_id = {"job_id": change.job.id}
        match change:
            case Discovered():
                self.transitions.labels(queue, "new", change.job.state.value).inc(exemplar=job_id)
                if change.job.state.terminal and change.job.duration_ms is not None:
                    self.job_duration.labels(queue, change.job.state.value).observe(
                        change.job.duration_ms / 1000, exemplar=job_id
                    )
            case Transition():
                frm, to = change.from_state.value, change.to_state.value
                self.transitions.labels(queue, frm, to).inc(exemplar=job_id)
                self.state_duration.labels(queue, frm).observe(
                    change.in_state_seconds, exemplar=job_id
                )
                if change.to_state.terminal and change.duration_ms is not None:
                    self.job_duration.labels(queue, to).observe(
                        change.duration_ms / 1000, exemplar=job_id
                    )
            case Vanished() | Forgotten():
                pass  # counted by dli_monitor_events_total{event="job.vanished"/"job.forgotten"}
            case _:
                assert_never(change)


class BehaviourCollector(Collector):
    """``dli_monitor_api_behaviour_info``: what the API was seen to do, one series whose labels
    are the verdicts (see :class:`~monitor.behaviour.ApiBehaviour`)."""

    def __init__(self, behaviour: Callable[[], ApiBehaviour]) -> None:
        self._behaviour = behaviour

    def collect(self) -> Iterable[Metric]:
        labels = self._behaviour().labels()
        family = GaugeMetricFamily(
            "dli_monitor_api_behaviour_info",
            "What the DLI API was seen to do on the points its documentation leaves open; "
            "'unknown' until observed.",
            labels=list(labels),
        )
        family.add_metric(list(labels.values()), 1)
        yield family
