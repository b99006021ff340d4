"""The HTTP face of the daemon: ``/metrics``, ``/healthz``, ``/readyz`` and a landing page.

``/metrics`` answers in OpenMetrics when the scraper's ``Accept`` header asks for it (exemplars
are only carried there) and in the Prometheus text format otherwise, gzip-encoded when the
scraper accepts it; the bytes come from an :class:`~monitor.output.exposition.Exposition`,
rendered once per change. ``/readyz`` is 503 until every poller has completed one poll;
``/healthz`` is 503 when a poll loop stopped making progress, so a wedged sidecar gets restarted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from monitor.output.exposition import Exposition

__all__ = ["Health", "make_app"]

_LANDING = """<!doctype html>
<html><head><title>dli-monitor</title></head>
<body><h1>dli-monitor</h1>
<ul><li><a href="/metrics">/metrics</a></li>
<li><a href="/healthz">/healthz</a></li>
<li><a href="/readyz">/readyz</a></li></ul>
</body></html>
"""


@dataclass(frozen=True, slots=True)
class Health:
    """Probes: each returns (ok, a short reason shown in the response body)."""

    live: Callable[[], tuple[bool, str]]
    ready: Callable[[], tuple[bool, str]]


def make_app(exposition: Exposition, health: Health) -> web.Application:
    """The routes: ``/metrics`` from ``exposition``, the probes from ``health``, a landing page."""

    async def metrics(request: web.Request) -> web.Response:
        body, content_type, zipped = exposition.render(
            request.headers.get("Accept", ""), request.headers.get("Accept-Encoding", "")
        )
        response = web.Response(body=body)
        response.headers["Content-Type"] = content_type
        if zipped:
            response.headers["Content-Encoding"] = "gzip"
        return response

    def probe(check: Callable[[], tuple[bool, str]]) -> Callable[[web.Request], object]:
        async def handler(request: web.Request) -> web.Response:
            ok, reason = check()
            return web.Response(text=reason + "\n", status=200 if ok else 503)

        return handler

    async def landing(request: web.Request) -> web.Response:
        return web.Response(text=_LANDING, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", landing)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", probe(health.live))  # type: ignore[arg-type]
    app.router.add_get("/readyz", probe(health.ready))  # type: ignore[arg-type]
    return app
