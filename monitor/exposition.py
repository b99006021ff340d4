"""The ``/metrics`` bytes, rendered once per change instead of once per scrape.

The registry stays the source of truth; what it renders is kept per format (Prometheus text or
OpenMetrics) and encoding (plain or gzip) until a poll applies (:meth:`Exposition.changed`) or
``max_age`` passes, whichever comes first. ``max_age`` bounds how stale the scrape-time values
are (the oldest job's age, request counters between polls): the daemon sets it to its shortest
poll interval, so a scrape never sees more than one poll's worth of lag, and a scrape between
polls costs a dictionary lookup whatever the number of queues.
"""

from __future__ import annotations

import gzip
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

__all__ = ["Exposition", "Rendering"]

Rendering = tuple[bytes, str, bool]
"""The body, its content type, and whether it is gzip-encoded."""


class Exposition:
    """Renders ``registry`` for a scrape, reusing the last rendering while it is current."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        max_age: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._registry = registry
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
            body = encoder(self._registry)
            self.renders += 1
            cached = (gzip.compress(body) if zipped else body, content_type, zipped)
            self._cache[key] = cached
        return cached
