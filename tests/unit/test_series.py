"""Our families render what prometheus-client renders, byte for byte, in both formats.

Two halves make the claim. The same changes applied to a :class:`Family` and to prometheus-client's
own metric give the same samples (bucket placement, sums, exemplar values); and prometheus-client,
formatting those samples itself, writes exactly the bytes :meth:`Family.render` wrote.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import cast

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import Metric
from prometheus_client.openmetrics import exposition
from prometheus_client.registry import Collector

from monitor.output.series import Family, Kind
from tests.fakes import FakeClock

BUCKETS = (0.5, 10, 86400)
LABELS = ("queue", "state")
label_values = st.tuples(st.sampled_from(["q", "etl", 'a"b', "back\\slash", "new\nline", "ü"]),
                         st.sampled_from(["running", "dead", ""]))  # fmt: skip
amounts = st.floats(min_value=0, max_value=1e12, allow_nan=False)
values = (
    st.floats(allow_nan=False) | st.integers(-(10**6), 10**15).map(float) | st.sampled_from(BUCKETS)
)
job_ids = st.none() | st.sampled_from(["job-1", "b7a53ee8-151e-4aa3", 'odd"id'])


class One(Collector):
    def __init__(self, *families: Family) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return [f.collect() for f in self.families]


def both_formats(*families: Family) -> tuple[tuple[bytes, bytes], tuple[bytes, bytes]]:
    registry = CollectorRegistry()
    registry.register(One(*families))
    ours_text = "".join(f.render(openmetrics=False) for f in families).encode()
    ours_om = "".join(f.render(openmetrics=True) for f in families).encode() + b"# EOF\n"
    openmetrics = cast("Callable[[CollectorRegistry], bytes]", exposition.generate_latest)
    return (ours_text, generate_latest(registry)), (ours_om, openmetrics(registry))


def native(kind: Kind, registry: CollectorRegistry) -> Counter | Gauge | Histogram:
    doc = 'Help with "quotes", a \\ and\na newline.'
    if kind == "counter":
        return Counter("m", doc, LABELS, registry=registry)
    if kind == "gauge":
        return Gauge("m", doc, LABELS, registry=registry)
    return Histogram("m", doc, LABELS, buckets=BUCKETS, registry=registry)


ops = st.lists(st.tuples(label_values, values, job_ids), max_size=12)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(["counter", "gauge", "histogram"]), ops, st.lists(label_values, max_size=3))
# a counter's exemplar carries the increment, not the running total
@example("counter", [(("q", "running"), 1.0, "job-1"), (("q", "running"), 2.0, 'odd"id')], [])
# a histogram's exemplar sits in the bucket its value falls in, a bound included
@example("histogram", [(("q", "dead"), 10.0, "job-1"), (("q", "dead"), 10.5, None)], [])
def test_renders_the_bytes_prometheus_client_renders(
    kind: Kind,
    changes: list[tuple[tuple[str, str], float, str | None]],
    touched: list[tuple[str, str]],
) -> None:
    clock = FakeClock(1_700_000_000.25)
    family = Family("m", 'Help with "quotes", a \\ and\na newline.', kind, LABELS, BUCKETS, clock)
    registry = CollectorRegistry()
    theirs = native(kind, registry)
    for labels in touched:
        family.touch(labels)
        theirs.labels(*labels)
    for labels, value, job in changes:
        exemplar = {"job_id": job} if job else None
        child = theirs.labels(*labels)
        if isinstance(child, Counter):
            amount = abs(value) if abs(value) < 1e300 else 1.0
            family.inc(labels, amount, exemplar)
            child.inc(amount, exemplar)
        elif isinstance(child, Gauge):
            family.set(labels, value)
            child.set(value)
        else:
            family.observe(labels, value, exemplar)
            child.observe(value, exemplar)
        # rendering between changes must not leave a stale line behind
        family.render(openmetrics=bool(len(changes) % 2))
    # the same samples (exemplar timestamps aside: each side read its own clock)...
    (ours,) = list(One(family).collect())
    (native_metric,) = list(registry.collect())
    strip = [
        (s.name, s.labels, s.value, s.exemplar and (s.exemplar.labels, s.exemplar.value))
        for s in ours.samples
    ]
    native_samples = [
        (s.name, s.labels, s.value, s.exemplar and (s.exemplar.labels, s.exemplar.value))
        for s in native_metric.samples
        if not s.name.endswith("_created")  # the daemon turns these off (metrics.py)
    ]
    assert sorted(strip, key=repr) == sorted(native_samples, key=repr)
    # ...and prometheus-client writes them as we did
    for mine, reference in both_formats(family):
        assert mine == reference


def test_a_counter_exemplar_is_the_last_increment_with_its_job() -> None:
    family = Family("t", "T.", "counter", LABELS, clock=FakeClock(1_700_000_000.5))
    family.inc(("q", "dead"), 1.0, {"job_id": "first"})
    family.inc(("q", "dead"), 2.0, {"job_id": "second"})
    assert family.render(openmetrics=True).splitlines()[2] == (
        't_total{queue="q",state="dead"} 3.0 # {job_id="second"} 2.0 1700000000.5'
    )


def test_a_change_renders_again_only_what_changed() -> None:
    family = Family("jobs", "Jobs.", "gauge", LABELS)
    family.replace({("q", "running"): 1, ("q", "dead"): 2})
    first = family.render(openmetrics=False)
    assert family.render(openmetrics=False) is first, "nothing changed: the same string"
    family.replace({("q", "running"): 1, ("q", "dead"): 3})
    assert family.render(openmetrics=False) == (
        "# HELP jobs Jobs.\n# TYPE jobs gauge\n"
        'jobs{queue="q",state="running"} 1.0\njobs{queue="q",state="dead"} 3.0\n'
    )
    family.replace({("q", "dead"): 3})
    assert "running" not in family.render(openmetrics=False)


def test_replace_keeps_the_order_it_is_given() -> None:
    family = Family("jobs", "Jobs.", "gauge", LABELS)
    family.replace({("b", "x"): 1, ("a", "x"): 2})
    family.replace({("a", "x"): 2, ("b", "x"): 1})
    for mine, reference in both_formats(family):
        assert mine == reference
    assert family.render(openmetrics=False).index('"a"') < family.render(openmetrics=False).index(
        '"b"'
    )


def test_wrong_label_count_is_refused() -> None:
    with pytest.raises(ValueError, match="takes 2 label values, not 1"):
        Family("m", "M.", "counter", LABELS).inc(("q",))
