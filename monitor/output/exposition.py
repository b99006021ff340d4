"""The ``/metrics`` bytes, rendered once per change instead of once per scrape.

The metrics stay the source of truth; what they render (:class:`Source`) is kept per format
(Prometheus text or OpenMetrics, as the scrape's ``Accept`` header chooses) and encoding (plain
or gzip) until a poll applies (:meth:`Exposition.changed`) or ``max_age`` passes, whichever
comes first. ``max_age`` bounds how stale the scrape-time values
are (the oldest job's age, request counters between polls): the daemon sets it to its shortest
poll interval, so a scrape never sees more than one poll's worth of lag, and a scrape between
polls costs a dictionary lookup whatever the number of queues.
"""

from __future__ import annotations

import gzip
import time
from collections.abc import Callable
from typing import Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

__all__ = ["Encoder", "Exposition", "RegistrySource", "Rendering", "Source"]

Encoder = Callable[[CollectorRegistry], bytes]
"""One of prometheus-client's exposition functions (text or OpenMetrics, with its options)."""

Rendering = tuple[bytes, str, bool]
"""The body, its content type, and whether it is gzip-encoded."""


class Source(Protocol):
    """What an :class:`Exposition` renders: :class:`~monitor.output.metrics.Metrics`, for one."""

    def expose(self, encoder: Encoder, *, openmetrics: bool) -> bytes:
        """The body in ``encoder``'s format (OpenMetrics when ``openmetrics``)."""
        ...


class RegistrySource:
    """A plain prometheus-client registry as a :class:`Source`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def expose(self, encoder: Encoder, *, openmetrics: bool) -> bytes:
        del openmetrics  # the encoder knows its format
        return encoder(self.registry)


class Exposition:
    """Renders ``source`` for a scrape, reusing the last rendering while it is current."""

    def __init__(
        self,
        source: Source,
        *,
        max_age: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._max_age = max_age
        self._clock = clock
        self._cache: dict[tuple[str, bool], Rendering] = {}
        self._since = clock()
        #: renderings made (a scrape served from the cache makes none)
        self.renders = 0

    def changed(self) -> None:
        """Something the metrics show changed: the next scrape renders afresh."""
        self._cache.clear()

    def render(self, accept: str, accept_encoding: str) -> Rendering:
        """The body for a scrape with these ``Accept`` and ``Accept-Encoding`` headers."""
        now = self._clock()
        if now - self._since >= self._max_age:
            self._cache.clear()
        if not self._cache:
            self._since = now
        encoder, content_type = choose_encoder(accept)
        zipped = "gzip" in accept_encoding
        key = (content_type, zipped)
        cached = self._cache.get(key)
        if cached is None:
            openmetrics = content_type.startswith("application/openmetrics-text")
            body = self._source.expose(encoder, openmetrics=openmetrics)
            self.renders += 1
            cached = (gzip.compress(body) if zipped else body, content_type, zipped)
            self._cache[key] = cached
        return cached
