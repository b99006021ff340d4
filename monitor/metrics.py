"""The contract's Prometheus metrics.

Every series carries ``project_id`` and ``region`` (a :class:`Scope`), so one Prometheus can
hold many projects whose queues share names. Series are changed only through the named methods
of :class:`TargetMetrics`, one per scope, never by ``.labels()`` calls elsewhere.

Event-driven series (transitions, durations, self metrics) are ordinary prometheus-client
metrics updated as the poller publishes changes. Level series (``dli_batch_jobs``, oldest age,
tracked jobs) are read from the pollers' snapshots at scrape time by :class:`SnapshotCollector`,
so they can never drift from the snapshot they describe.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, assert_never

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
)
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
    "Scope",
    "SnapshotCollector",
    "SnapshotView",
    "TargetMetrics",
]

# ``*_created`` series double the counters' and histograms' samples and no rule or dashboard
# reads them; counter resets are found by rate() anyway. Process-wide, as prometheus-client has it.
disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped upstream

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
_SCOPE = ["project_id", "region"]


@dataclass(frozen=True, slots=True)
class Scope:
    """The labels that keep one project's series apart from another's in one Prometheus."""

    project_id: str
    #: "" when not known (an endpoint outside the region table); PromQL reads it as absent
    region: str = ""

    @property
    def values(self) -> list[str]:
        return [self.project_id, self.region]


class SnapshotView(Protocol):
    """What the collector needs from a poller: its scope, its queues and its snapshot's
    summary."""

    @property
    def scope(self) -> Scope: ...

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
            labels=[*_SCOPE, "queue", "state"],
        )
        oldest = GaugeMetricFamily(
            "dli_batch_job_oldest_age_seconds",
            "Seconds the longest-waiting job now in each active state has been in it (from the "
            "API's update_time, else the poll time at which the state was first seen); 0 if none.",
            labels=[*_SCOPE, "queue", "state"],
        )
        tracked = GaugeMetricFamily(
            "dli_monitor_tracked_jobs", "Jobs held in the monitor's snapshots.", labels=_SCOPE
        )
        now_ms = self._clock() * 1000
        totals: dict[Scope, int] = {}
        for view in views:
            scope, summary = view.scope, view.summary
            totals[scope] = totals.get(scope, 0) + view.tracked_jobs
            queues = set(view.export_queues)
            if summary is not None:
                queues |= summary.queues()
            for queue in sorted(queues):
                for state in JobState:
                    labels = [*scope.values, queue, state.value]
                    count = summary.counts.get((queue, state), 0) if summary else 0
                    jobs.add_metric(labels, count)
                    if state in ACTIVE_STATES:
                        since = summary.oldest_since_ms.get((queue, state)) if summary else None
                        age = max(0.0, (now_ms - since) / 1000) if since is not None else 0.0
                        oldest.add_metric(labels, age)
        for scope, total in totals.items():
            tracked.add_metric(scope.values, total)
        yield jobs
        yield oldest
        yield tracked


class Metrics:
    """All of the daemon's metric families, on one registry (not the process-global one);
    :meth:`for_scope` gives the handle through which one project's series change."""

    def __init__(
        self,
        version: str,
        buckets: Sequence[float] = DEFAULT_DURATION_BUCKETS,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.version = version
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.transitions = Counter(
            "dli_batch_job_transitions",
            'Observed job state transitions; from_state="new" for a job first seen after start-up.',
            [*_SCOPE, "queue", "from_state", "to_state"],
            registry=r,
        )
        self.job_duration = Histogram(
            "dli_batch_job_duration_seconds",
            "A job's total run time, observed once when it reaches success or dead (the API's "
            "duration, else update_time - create_time).",
            [*_SCOPE, "queue", "state"],
            buckets=buckets,
            registry=r,
        )
        self.state_duration = Histogram(
            "dli_batch_job_state_duration_seconds",
            "Time a job spent in a state, observed when it leaves it (starting = start latency); "
            "from the API's update_time, else poll times.",
            [*_SCOPE, "queue", "state"],
            buckets=buckets,
            registry=r,
        )
        self.up = Gauge(
            "dli_monitor_up",
            "1 when the last poll of the queue succeeded.",
            [*_SCOPE, "queue"],
            registry=r,
        )
        self.last_success = Gauge(
            "dli_monitor_last_success_timestamp_seconds",
            "Unix time of the last successful poll of the queue.",
            [*_SCOPE, "queue"],
            registry=r,
        )
        self.poll_duration = Histogram(
            "dli_monitor_poll_duration_seconds",
            "Wall time of one poll of the queue, retries included.",
            [*_SCOPE, "queue"],
            buckets=_POLL_BUCKETS,
            registry=r,
        )
        self.api_requests = Counter(
            "dli_monitor_api_requests",
            'Requests to the DLI API by endpoint and HTTP status (code="error": no response).',
            [*_SCOPE, "endpoint", "code"],
            registry=r,
        )
        self.malformed = Counter(
            "dli_monitor_malformed_responses",
            "API responses that could not be read (bad JSON, wrong types) by endpoint.",
            [*_SCOPE, "endpoint"],
            registry=r,
        )
        self.rejected_rows = Counter(
            "dli_monitor_rejected_rows",
            'List rows skipped: reason="malformed" (no id/state) or "unknown_state".',
            [*_SCOPE, "queue", "reason"],
            registry=r,
        )
        self.events = Counter(
            "dli_monitor_events",
            "Events written to the event stream.",
            [*_SCOPE, "event"],
            registry=r,
        )
        # prometheus-client adds the suffix: exported as dli_monitor_build_info{..., version}.
        self.build = Info("dli_monitor_build", "Version of dli-monitor.", _SCOPE, registry=r)

    def for_scope(self, scope: Scope) -> TargetMetrics:
        """The handle for one project's series; its build-info series exists from now on."""
        self.build.labels(*scope.values).info({"version": self.version})
        return TargetMetrics(self, scope)

    def add_views(self, views: Callable[[], Iterable[SnapshotView]]) -> None:
        """Register the scrape-time collector over the pollers' snapshots."""
        self.registry.register(SnapshotCollector(views))

    def add_behaviour(self, behaviours: Callable[[], Iterable[tuple[Scope, ApiBehaviour]]]) -> None:
        """Register ``dli_monitor_api_behaviour_info`` over each scope's current behaviour."""
        self.registry.register(BehaviourCollector(behaviours))


RejectReason = Literal["malformed", "unknown_state"]


class TargetMetrics:
    """One project's series: every change a poller, client or event log makes to the metrics
    goes through a method here."""

    __slots__ = ("_labels", "_m", "scope")

    def __init__(self, metrics: Metrics, scope: Scope) -> None:
        self._m = metrics
        self.scope = scope
        self._labels = scope.values

    def init_target(self, label: str) -> None:
        """Create a poller's self-metric series (``dli_monitor_up`` starts at 0: not polled yet)."""
        m, s = self._m, self._labels
        m.up.labels(*s, label)
        m.last_success.labels(*s, label)
        m.poll_duration.labels(*s, label)

    def init_queue(self, queue: str) -> None:
        """Create every per-queue job series at zero, so ``absent()`` and ``rate()`` behave."""
        m, s = self._m, self._labels
        for state in JobState:
            m.transitions.labels(*s, queue, "new", state.value)
            if state.terminal:
                m.job_duration.labels(*s, queue, state.value)
            else:  # time in state is observed when a job leaves it: terminal states never are
                m.state_duration.labels(*s, queue, state.value)
        for old, new in DIRECT_EDGES:
            m.transitions.labels(*s, queue, old.value, new.value)

    def record(self, queue: str, change: Change) -> None:
        """Count one published change."""
        m, s = self._m, self._labels
        job_id = {"job_id": change.job.id}
        match change:
            case Discovered():
                state = change.job.state.value
                m.transitions.labels(*s, queue, "new", state).inc(exemplar=job_id)
                if change.job.state.terminal and change.job.duration_ms is not None:
                    m.job_duration.labels(*s, queue, state).observe(
                        change.job.duration_ms / 1000, exemplar=job_id
                    )
            case Transition():
                frm, to = change.from_state.value, change.to_state.value
                m.transitions.labels(*s, queue, frm, to).inc(exemplar=job_id)
                m.state_duration.labels(*s, queue, frm).observe(
                    change.in_state_seconds, exemplar=job_id
                )
                if change.to_state.terminal and change.duration_ms is not None:
                    m.job_duration.labels(*s, queue, to).observe(
                        change.duration_ms / 1000, exemplar=job_id
                    )
            case Vanished() | Forgotten():
                pass  # counted by dli_monitor_events_total{event="job.vanished"/"job.forgotten"}
            case _:
                assert_never(change)

    def poll_succeeded(self, label: str, at: float) -> None:
        """A poll of ``label`` was applied at unix time ``at``."""
        self._m.up.labels(*self._labels, label).set(1)
        self._m.last_success.labels(*self._labels, label).set(at)

    def poll_failed(self, label: str) -> None:
        """A poll of ``label`` gave up."""
        self._m.up.labels(*self._labels, label).set(0)

    def poll_took(self, label: str, seconds: float) -> None:
        """One poll of ``label``, applied or not, took ``seconds`` of wall time."""
        self._m.poll_duration.labels(*self._labels, label).observe(seconds)

    def rows_rejected(self, label: str, reason: RejectReason, count: int = 1) -> None:
        """``count`` list rows of ``label`` were skipped for ``reason``."""
        if count:
            self._m.rejected_rows.labels(*self._labels, label, reason).inc(count)

    def api_response(self, endpoint: str, code: str) -> None:
        """One API request ended with HTTP status ``code`` (``"error"``: no response)."""
        self._m.api_requests.labels(*self._labels, endpoint, code).inc()

    def malformed_response(self, endpoint: str) -> None:
        """One API response could not be read."""
        self._m.malformed.labels(*self._labels, endpoint).inc()

    def event_written(self, event: str) -> None:
        """One event was written to the stream."""
        self._m.events.labels(*self._labels, event).inc()


class BehaviourCollector(Collector):
    """``dli_monitor_api_behaviour_info``: what each scope's API was seen to do, one series per
    scope whose labels are the verdicts (see :class:`~monitor.behaviour.ApiBehaviour`)."""

    def __init__(self, behaviours: Callable[[], Iterable[tuple[Scope, ApiBehaviour]]]) -> None:
        self._behaviours = behaviours

    def collect(self) -> Iterable[Metric]:
        family: GaugeMetricFamily | None = None
        for scope, behaviour in self._behaviours():
            labels = behaviour.labels()
            if family is None:
                family = GaugeMetricFamily(
                    "dli_monitor_api_behaviour_info",
                    "What the DLI API was seen to do on the points its documentation leaves "
                    "open; 'unknown' until observed.",
                    labels=[*_SCOPE, *labels],
                )
            family.add_metric([*scope.values, *labels.values()], 1)
        if family is not None:
            yield family
