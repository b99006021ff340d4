"""The contract's Prometheus metrics.

Every series carries ``project_id`` and ``region`` (a :class:`Scope`), so one Prometheus can
hold many projects whose queues share names. Series are changed only through the named methods
of :class:`TargetMetrics`, one per scope, never by ``.labels()`` calls elsewhere.

Event-driven series (transitions, durations, self metrics) are updated as the poller publishes
changes. Level series (``dli_batch_jobs``, oldest age, tracked jobs) are read from the pollers'
snapshots at each exposition (:mod:`monitor.output.levels`), so they can never drift from the
snapshot they describe.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Literal, assert_never

from prometheus_client import CollectorRegistry, Counter, Info, disable_created_metrics
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from monitor.core.failure import REASONS
from monitor.core.jobs import JobState
from monitor.core.snapshot import DIRECT_EDGES, Change, Discovered, Forgotten, Transition, Vanished
from monitor.output.levels import BehaviourCollector, LevelSeries, SnapshotView
from monitor.output.scope import SCOPE_LABELS, Scope
from monitor.output.series import Family

if TYPE_CHECKING:
    from monitor.core.behaviour import ApiBehaviour

__all__ = [
    "DEFAULT_DURATION_BUCKETS",
    "Metrics",
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
_EOF = b"# EOF\n"


class _Everything(Collector):
    """The registry's view of every family, in the order :meth:`Metrics.expose` writes them."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        self._metrics.levels.refresh()
        yield from self._metrics.client_registry.collect()
        for family in self._metrics.families:
            yield family.collect()


class Metrics:
    """All of the daemon's metric families; :meth:`for_scope` gives the handle through which
    one project's series change, and :meth:`expose` writes them for a scrape.

    The per-queue families are :class:`~monitor.output.series.Family` objects, which keep each
    series' rendered lines until it changes (with hundreds of queues, prometheus-client's per-sample
    rendering cost a quarter of a second per scrape); the per-project ones (requests, events,
    build and API behaviour) are prometheus-client metrics on :attr:`client_registry`.
    :attr:`registry` holds both, and is what tests and ``get_sample_value`` read.
    """

    def __init__(
        self,
        version: str,
        buckets: Sequence[float] = DEFAULT_DURATION_BUCKETS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.version = version
        self.transitions = Family(
            "dli_batch_job_transitions",
            'Observed job state transitions; from_state="new" for a job first seen after start-up.',
            "counter",
            [*SCOPE_LABELS, "queue", "from_state", "to_state"],
        )
        self.job_duration = Family(
            "dli_batch_job_duration_seconds",
            "A job's total run time, observed once when it reaches success or dead (the API's "
            "duration, else update_time - create_time).",
            "histogram",
            [*SCOPE_LABELS, "queue", "state"],
            buckets,
        )
        self.state_duration = Family(
            "dli_batch_job_state_duration_seconds",
            "Time a job spent in a state, observed when it leaves it (starting = start latency); "
            "from the API's update_time, else poll times.",
            "histogram",
            [*SCOPE_LABELS, "queue", "state"],
            buckets,
        )
        self.failures = Family(
            "dli_batch_job_failures",
            "Jobs that reached dead, by the reason their last log records give (unknown: none).",
            "counter",
            [*SCOPE_LABELS, "queue", "reason"],
        )
        self.up = Family(
            "dli_monitor_up",
            "1 when the last poll of the queue succeeded.",
            "gauge",
            [*SCOPE_LABELS, "queue"],
        )
        self.last_success = Family(
            "dli_monitor_last_success_timestamp_seconds",
            "Unix time of the last successful poll of the queue.",
            "gauge",
            [*SCOPE_LABELS, "queue"],
        )
        self.poll_duration = Family(
            "dli_monitor_poll_duration_seconds",
            "Wall time of one poll of the queue, retries included.",
            "histogram",
            [*SCOPE_LABELS, "queue"],
            _POLL_BUCKETS,
        )
        self.rejected_rows = Family(
            "dli_monitor_rejected_rows",
            'List rows skipped: reason="malformed" (no id/state) or "unknown_state".',
            "counter",
            [*SCOPE_LABELS, "queue", "reason"],
        )
        self.ceiling = Family(
            "dli_monitor_request_ceiling",
            "Requests the target may send in any window of `window_seconds`: the configured "
            "MAX_RPS / MAX_RPM, or lower where the gateway's 429 stated a stricter policy.",
            "gauge",
            [*SCOPE_LABELS, "window_seconds"],
        )
        self.levels = LevelSeries(clock)
        self.families: tuple[Family, ...] = (
            self.transitions,
            self.job_duration,
            self.state_duration,
            self.failures,
            *self.levels.families,
            self.up,
            self.last_success,
            self.poll_duration,
            self.rejected_rows,
            self.ceiling,
        )
        self.client_registry = r = CollectorRegistry()
        self.api_requests = Counter(
            "dli_monitor_api_requests",
            'Requests to the DLI API by endpoint and HTTP status (code="error": no response).',
            [*SCOPE_LABELS, "endpoint", "code"],
            registry=r,
        )
        self.malformed = Counter(
            "dli_monitor_malformed_responses",
            "API responses that could not be read (bad JSON, wrong types) by endpoint.",
            [*SCOPE_LABELS, "endpoint"],
            registry=r,
        )
        self.events = Counter(
            "dli_monitor_events",
            "Events written to the event stream.",
            [*SCOPE_LABELS, "event"],
            registry=r,
        )
        # prometheus-client adds the suffix: exported as dli_monitor_build_info{..., version}.
        self.build = Info("dli_monitor_build", "Version of dli-monitor.", SCOPE_LABELS, registry=r)
        self.registry = CollectorRegistry()
        self.registry.register(_Everything(self))

    def for_scope(self, scope: Scope) -> TargetMetrics:
        """The handle for one project's series; its build-info series exists from now on."""
        self.build.labels(*scope.values).info({"version": self.version})
        return TargetMetrics(self, scope)

    def add_views(self, views: Callable[[], Iterable[SnapshotView]]) -> None:
        """Read the level series from these pollers' snapshots at each exposition."""
        self.levels.add_views(views)

    def add_behaviour(self, behaviours: Callable[[], Iterable[tuple[Scope, ApiBehaviour]]]) -> None:
        """Register ``dli_monitor_api_behaviour_info`` over each scope's current behaviour."""
        self.client_registry.register(BehaviourCollector(behaviours))

    def expose(self, encoder: Callable[[CollectorRegistry], bytes], *, openmetrics: bool) -> bytes:
        """Every family in the format of ``encoder`` (prometheus-client's, chosen by the scrape's
        ``Accept`` header), which must be OpenMetrics when ``openmetrics`` says so. The same
        bytes as ``encoder(self.registry)``, at the cost of the series that changed."""
        self.levels.refresh()
        head = encoder(self.client_registry)
        if openmetrics:
            head = head.removesuffix(_EOF)
        tail = "".join(family.render(openmetrics=openmetrics) for family in self.families)
        return head + tail.encode() + (_EOF if openmetrics else b"")


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
        m, key = self._m, (*self._labels, label)
        m.up.touch(key)
        m.last_success.touch(key)
        m.poll_duration.touch(key)

    def init_queue(self, queue: str) -> None:
        """Create every per-queue job series at zero, so ``absent()`` and ``rate()`` behave."""
        m, s = self._m, self._labels
        for state in JobState:
            m.transitions.touch((*s, queue, "new", state.value))
            if state.terminal:
                m.job_duration.touch((*s, queue, state.value))
            else:  # time in state is observed when a job leaves it: terminal states never are
                m.state_duration.touch((*s, queue, state.value))
        for old, new in DIRECT_EDGES:
            m.transitions.touch((*s, queue, old.value, new.value))
        for reason in REASONS:
            m.failures.touch((*s, queue, reason))

    def record(self, queue: str, change: Change) -> None:
        """Count one published change."""
        m, s = self._m, self._labels
        job_id = {"job_id": change.job.id}
        match change:
            case Discovered():
                state = change.job.state.value
                m.transitions.inc((*s, queue, "new", state), exemplar=job_id)
                if change.job.state.terminal and change.job.duration_ms is not None:
                    m.job_duration.observe(
                        (*s, queue, state), change.job.duration_ms / 1000, exemplar=job_id
                    )
            case Transition():
                frm, to = change.from_state.value, change.to_state.value
                m.transitions.inc((*s, queue, frm, to), exemplar=job_id)
                m.state_duration.observe((*s, queue, frm), change.in_state_seconds, job_id)
                if change.to_state.terminal and change.duration_ms is not None:
                    m.job_duration.observe((*s, queue, to), change.duration_ms / 1000, job_id)
            case Vanished() | Forgotten():
                pass  # counted by dli_monitor_events_total{event="job.vanished"/"job.forgotten"}
            case _:
                assert_never(change)

    def job_failed(self, queue: str, reason: str) -> None:
        """A job of ``queue`` reached ``dead``, for ``reason``."""
        self._m.failures.inc((*self._labels, queue, reason))

    def poll_succeeded(self, label: str, at: float) -> None:
        """A poll of ``label`` was applied at unix time ``at``."""
        self._m.up.set((*self._labels, label), 1)
        self._m.last_success.set((*self._labels, label), at)

    def poll_failed(self, label: str) -> None:
        """A poll of ``label`` gave up."""
        self._m.up.set((*self._labels, label), 0)

    def poll_took(self, label: str, seconds: float) -> None:
        """One poll of ``label``, applied or not, took ``seconds`` of wall time."""
        self._m.poll_duration.observe((*self._labels, label), seconds)

    def rows_rejected(self, label: str, reason: RejectReason, count: int = 1) -> None:
        """``count`` list rows of ``label`` were skipped for ``reason``."""
        if count:
            self._m.rejected_rows.inc((*self._labels, label, reason), count)

    def request_ceiling(self, window_seconds: int, limit: int) -> None:
        """The target may send ``limit`` requests in any ``window_seconds``."""
        self._m.ceiling.set((*self._labels, str(window_seconds)), limit)

    def api_response(self, endpoint: str, code: str) -> None:
        """One API request ended with HTTP status ``code`` (``"error"``: no response)."""
        self._m.api_requests.labels(*self._labels, endpoint, code).inc()

    def malformed_response(self, endpoint: str) -> None:
        """One API response could not be read."""
        self._m.malformed.labels(*self._labels, endpoint).inc()

    def event_written(self, event: str) -> None:
        """One event was written to the stream."""
        self._m.events.labels(*self._labels, event).inc()
