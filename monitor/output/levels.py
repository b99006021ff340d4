"""Level series, read from the pollers' snapshots when the metrics are exposed.

``dli_batch_jobs``, ``dli_batch_job_oldest_age_seconds`` and ``dli_monitor_tracked_jobs`` are
never counted up or down by events: each exposition reads them from the snapshots' summaries,
so they can never drift from the snapshots they describe. ``dli_monitor_api_behaviour_info``
is read the same way from each scope's API behaviour. Pure: the views and the clock are given.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Protocol

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.core.jobs import ACTIVE_STATES, JobState
from monitor.output.scope import SCOPE_LABELS, Scope
from monitor.output.series import Family, LabelValues

if TYPE_CHECKING:
    from monitor.core.behaviour import ApiBehaviour
    from monitor.core.snapshot import StateSummary

__all__ = ["BehaviourCollector", "LevelSeries", "SnapshotView"]


class SnapshotView(Protocol):
    """What the level series need from a poller: its scope, its queues and its snapshot's
    summary."""

    @property
    def scope(self) -> Scope: ...

    @property
    def export_queues(self) -> Iterable[str]: ...

    @property
    def summary(self) -> StateSummary | None: ...

    @property
    def tracked_jobs(self) -> int: ...


class LevelSeries:
    """The three level families, refreshed from the views before each exposition."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._views: list[Callable[[], Iterable[SnapshotView]]] = []
        self._clock = clock
        self.jobs = Family(
            "dli_batch_jobs",
            "Jobs the DLI API currently lists in each state (terminal states as far back as the "
            "API's history reaches).",
            "gauge",
            [*SCOPE_LABELS, "queue", "state"],
        )
        self.oldest = Family(
            "dli_batch_job_oldest_age_seconds",
            "Seconds the longest-waiting job now in each active state has been in it (from the "
            "API's update_time, else the poll time at which the state was first seen); 0 if none.",
            "gauge",
            [*SCOPE_LABELS, "queue", "state"],
        )
        self.tracked = Family(
            "dli_monitor_tracked_jobs",
            "Jobs held in the monitor's snapshots.",
            "gauge",
            SCOPE_LABELS,
        )

    @property
    def families(self) -> tuple[Family, ...]:
        return (self.jobs, self.oldest, self.tracked)

    def add_views(self, views: Callable[[], Iterable[SnapshotView]]) -> None:
        self._views.append(views)

    def refresh(self) -> None:
        """Read every view's summary into the families."""
        jobs: dict[LabelValues, float] = {}
        oldest: dict[LabelValues, float] = {}
        totals: dict[LabelValues, float] = {}
        now_ms = self._clock() * 1000
        for views in self._views:
            for view in views():
                scope, summary = view.scope.values, view.summary
                totals[scope] = totals.get(scope, 0) + view.tracked_jobs
                queues = set(view.export_queues)
                if summary is not None:
                    queues |= summary.queues()
                for queue in sorted(queues):
                    for state in JobState:
                        key = (*scope, queue, state.value)
                        jobs[key] = summary.counts.get((queue, state), 0) if summary else 0
                        if state in ACTIVE_STATES:
                            since = summary.oldest_since_ms.get((queue, state)) if summary else None
                            age = (now_ms - since) / 1000 if since is not None else 0.0
                            oldest[key] = max(0.0, age)
        self.jobs.replace(jobs)
        self.oldest.replace(oldest)
        self.tracked.replace(totals)


class BehaviourCollector(Collector):
    """``dli_monitor_api_behaviour_info``: what each scope's API was seen to do, one series per
    scope whose labels are the verdicts (see :class:`~monitor.core.behaviour.ApiBehaviour`)."""

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
                    labels=[*SCOPE_LABELS, *labels],
                )
            family.add_metric([*scope.values, *labels.values()], 1)
        if family is not None:
            yield family
