"""Metric families that render their own exposition, one series at a time.

prometheus-client renders every sample afresh on every exposition (about 7 µs each); with a few
hundred queues that is a quarter of a second per scrape, all CPU. The per-queue families are
kept here instead: each series keeps its rendered lines, per format, until its value changes, so
rendering after a poll costs the lines that changed plus a join of the rest.

The output is byte for byte what prometheus-client renders for the same samples, in the Prometheus
text format and in OpenMetrics (``tests/unit/test_series.py`` holds the two side by side):
:meth:`Family.collect` gives prometheus-client the same samples, which is also how these families
appear in a ``CollectorRegistry`` for ``get_sample_value``. Pure: no I/O; the clock that stamps
exemplars is passed in.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Literal, cast

from prometheus_client.core import Metric
from prometheus_client.samples import Exemplar
from prometheus_client.utils import floatToGoString

__all__ = ["Family", "Kind", "LabelValues"]

Kind = Literal["counter", "gauge", "histogram"]
LabelValues = tuple[str, ...]
_TEXT, _OPENMETRICS = 0, 1
#: how prometheus-client writes a value (Go's float format), untyped upstream
_go = cast("Callable[[float], str]", floatToGoString)


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    # prometheus-client sorts labels by name, so ``le`` comes first in a bucket.
    body = ",".join(f'{name}="{_escape(value)}"' for name, value in sorted(pairs))
    return "{" + body + "}" if body else ""


def _exemplar(exemplar: Exemplar | None) -> str:
    if exemplar is None:
        return ""
    labels = _labels(exemplar.labels.items())
    return f" # {labels} {_go(exemplar.value)} {exemplar.timestamp}"


class _Series:
    """One label set's values and, per format, its rendered lines (``None``: render again)."""

    __slots__ = ("count", "exemplars", "lines", "pairs", "prefixes", "sum", "value")

    def __init__(self, pairs: tuple[tuple[str, str], ...], buckets: int) -> None:
        self.pairs = pairs
        #: each line up to its value (names and labels never change): built at the first render
        self.prefixes: tuple[str, ...] = ()
        self.value = 0.0
        self.sum = 0.0
        self.count = [0.0] * buckets  # per bucket, not cumulative
        self.exemplars: list[Exemplar | None] = [None] * max(buckets, 1)
        self.lines: list[str | None] = [None, None]


class Family:
    """One metric family: its series by label values, and its rendering per format.

    Series change only through :meth:`inc`, :meth:`set` and :meth:`observe`, which drop the
    changed series' lines and the family's joined rendering; :meth:`touch` creates a series at
    zero (so ``rate()`` and ``absent()`` behave before the first event).
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        kind: Kind,
        labelnames: Sequence[str],
        buckets: Sequence[float] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.kind = kind
        self.labelnames = tuple(labelnames)
        bounds = [float(b) for b in buckets]
        if kind == "histogram" and (not bounds or bounds[-1] != math.inf):
            bounds.append(math.inf)
        self._bounds = tuple(bounds)
        self._clock = clock
        self._series: dict[LabelValues, _Series] = {}
        self._rendered: list[str | None] = [None, None]
        # The text format names a counter by its sample and leaves quotes in HELP unescaped.
        exposed = f"{name}_total" if kind == "counter" else name
        text_help = documentation.replace("\\", r"\\").replace("\n", r"\n")
        self._headers = (
            f"# HELP {exposed} {text_help}\n# TYPE {exposed} {kind}\n",
            f"# HELP {name} {_escape(documentation)}\n# TYPE {name} {kind}\n",
        )

    # -- changes ------------------------------------------------------------------------------

    def _new(self, values: LabelValues) -> _Series:
        if len(values) != len(self.labelnames):
            msg = f"{self.name} takes {len(self.labelnames)} label values, not {len(values)}"
            raise ValueError(msg)
        return _Series(tuple(zip(self.labelnames, values, strict=True)), len(self._bounds))

    def _get(self, values: LabelValues) -> _Series:
        """The series, created if new, with its rendering dropped: the caller changes it."""
        series = self._series.get(values)
        if series is None:
            series = self._series[values] = self._new(values)
        series.lines = [None, None]
        self._rendered = [None, None]
        return series

    def touch(self, values: LabelValues) -> None:
        """Create the series at zero if it does not exist."""
        if values not in self._series:
            self._get(values)

    def inc(
        self, values: LabelValues, amount: float = 1.0, exemplar: Mapping[str, str] | None = None
    ) -> None:
        """Add ``amount`` to a counter (or gauge) series."""
        series = self._get(values)
        series.value += amount
        if exemplar is not None:
            series.exemplars[0] = Exemplar(dict(exemplar), amount, self._clock())

    def set(self, values: LabelValues, value: float) -> None:
        """Set a gauge series."""
        series = self._series.get(values)
        if series is None or series.value != value:
            self._get(values).value = float(value)

    def observe(
        self, values: LabelValues, value: float, exemplar: Mapping[str, str] | None = None
    ) -> None:
        """Observe ``value`` in a histogram series."""
        series = self._get(values)
        series.sum += value
        for i, bound in enumerate(self._bounds):
            if value <= bound:
                series.count[i] += 1
                if exemplar is not None:
                    series.exemplars[i] = Exemplar(dict(exemplar), value, self._clock())
                break

    def replace(self, values: Mapping[LabelValues, float]) -> None:
        """Make a gauge family hold exactly these series, in this order (level series read from
        snapshots); a series whose value did not change keeps its rendering."""
        if list(values) != list(self._series):
            old, self._series = self._series, {}
            for key in values:
                self._series[key] = old.get(key) or self._new(key)
            self._rendered = [None, None]
        for key, value in values.items():
            self.set(key, value)

    # -- exposition ---------------------------------------------------------------------------

    def render(self, *, openmetrics: bool) -> str:
        """The family's exposition in one format: its header and every series' lines."""
        fmt = _OPENMETRICS if openmetrics else _TEXT
        rendered = self._rendered[fmt]
        if rendered is None:
            parts = [self._headers[fmt]]
            for series in self._series.values():
                lines = series.lines[fmt]
                if lines is None:
                    lines = series.lines[fmt] = self._lines(series, openmetrics=openmetrics)
                parts.append(lines)
            rendered = self._rendered[fmt] = "".join(parts)
        return rendered

    def _names(self, series: _Series) -> list[tuple[str, tuple[tuple[str, str], ...]]]:
        """Each of the series' samples: its name and labels (these never change)."""
        if self.kind == "gauge":
            return [(self.name, series.pairs)]
        if self.kind == "counter":
            return [(f"{self.name}_total", series.pairs)]
        buckets = [
            (f"{self.name}_bucket", (*series.pairs, ("le", _go(bound)))) for bound in self._bounds
        ]
        return [*buckets, (f"{self.name}_count", series.pairs), (f"{self.name}_sum", series.pairs)]

    def _values(self, series: _Series) -> list[tuple[float, Exemplar | None]]:
        """Each of the series' samples: its value and exemplar, in :meth:`_names`' order."""
        if self.kind != "histogram":
            return [(series.value, series.exemplars[0])]
        values: list[tuple[float, Exemplar | None]] = []
        cumulative = 0.0
        for count, exemplar in zip(series.count, series.exemplars, strict=True):
            cumulative += count
            values.append((cumulative, exemplar))
        return [*values, (cumulative, None), (series.sum, None)]

    def _lines(self, series: _Series, *, openmetrics: bool) -> str:
        if not series.prefixes:
            series.prefixes = tuple(
                f"{name}{_labels(pairs)} " for name, pairs in self._names(series)
            )
        return "".join(
            f"{prefix}{_go(value)}{_exemplar(exemplar) if openmetrics else ''}\n"
            for prefix, (value, exemplar) in zip(series.prefixes, self._values(series), strict=True)
        )

    def collect(self) -> Metric:
        """The same samples as a prometheus-client family (for a registry, and the tests)."""
        metric = Metric(self.name, self.documentation, self.kind)
        for series in self._series.values():
            for (name, pairs), (value, exemplar) in zip(
                self._names(series), self._values(series), strict=True
            ):
                metric.add_sample(name, dict(pairs), value, exemplar=exemplar)
        return metric
