"""The simulator's HTTP face: DLI's batch endpoints over aiohttp, with optional faults.

Endpoints: ``GET /v2.0/{project_id}/batches`` (offset paging and every documented filter, plus
``order``, ``start`` and ``end``), ``GET …/batches/{batch_id}`` and ``…/{batch_id}/state``; the
answers themselves come from :mod:`monitor.simulator.api` under the simulator's
:class:`~monitor.simulator.api.ApiVariant`. In front of them: signature checks, random faults,
and (``gateway_limit``) the API gateway's sliding-window rate limit, which answers 429
``APIG.0308`` to a request that would make more than that many in any one second.
"""

from __future__ import annotations

import email.utils
import random
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import orjson
from aiohttp import web

from monitor.dli.auth import OutgoingRequest
from monitor.output.serving import serve
from monitor.simulator.api import Answer, ApiVariant, detail_answer, error_body, list_answer
from monitor.simulator.gateway import verify_signature
from monitor.simulator.world import World

__all__ = ["STATS_PATH", "Faults", "Simulator", "make_app", "running_simulator"]


@dataclass(slots=True)
class Faults:
    """Probabilities (0..1) of each fault per request, and latency added to every answer."""

    throttle: float = 0.0
    retry_after: float = 1.0
    server_error: float = 0.0
    malformed: float = 0.0
    timeout: float = 0.0
    timeout_seconds: float = 30.0
    latency: float = 0.0
    #: list requests for these queues always answer 500
    failing_queues: frozenset[str] = frozenset()
    #: per list request: a new job lands at the head of the queue and its oldest finished job
    #: is deleted, so rows shift both ways between the pages of a pass
    churn: float = 0.0


class Simulator:
    """A :class:`World` behind DLI's HTTP API. ``clock`` gives Unix seconds."""

    def __init__(  # noqa: PLR0913 (a simulation's knobs)
        self,
        world: World,
        *,
        faults: Faults | None = None,
        seed: int = 0,
        credentials: tuple[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        variant: ApiVariant | None = None,
        gateway_limit: int | None = None,
        gateway_window: int = 1,
    ) -> None:
        self.world = world
        self.variant = variant or ApiVariant()
        #: the gateway's ceiling: at most this many requests accepted in any ``gateway_window``
        #: seconds; its 429 states the policy, as APIG's does
        self.gateway_limit = gateway_limit
        self.gateway_window = gateway_window
        #: monotonic arrival times of the requests the gateway let through (last second)
        self._accepted: deque[float] = deque()
        #: how many requests the gateway throttled
        self.gateway_throttled = 0
        #: list requests at offset 0 (one per paging pass), and later pages that came back empty
        #: (requests past the end of the data)
        self.first_pages = 0
        self.pages_past_end = 0
        #: (ak, sk): when set, every request must carry a valid SDK-HMAC-SHA256 signature
        self.credentials = credentials
        self.faults = faults or Faults()
        self.requests = 0
        #: (monotonic time, path) of recent requests, for tests that measure request rates
        self.request_log: deque[tuple[float, str]] = deque(maxlen=100_000)
        self._rng = random.Random(seed ^ 0x5EED)
        self._clock = clock

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    # -- helpers -----------------------------------------------------------------------------

    def error(self, status: int, code: str, message: str) -> web.Response:
        rid = uuid.uuid4().hex
        return self._respond(
            Answer(status, error_body(code, message, self.variant.error_style, rid)), rid
        )

    @staticmethod
    def _respond(answer: Answer, rid: str) -> web.Response:
        return web.Response(
            body=orjson.dumps(answer.doc),
            status=answer.status,
            content_type="application/json",
            headers={"X-Request-Id": rid},
        )

    def _throttled(self, code: str | None = None, policy: str = "") -> web.Response:
        message = "The throttling threshold has been reached" + policy
        response = self.error(429, code or self.variant.throttle_code, message)
        if self.variant.throttle_retry_after:
            response.headers["Retry-After"] = f"{self.faults.retry_after:g}"
        return response

    def _gateway(self) -> web.Response | None:
        """The gateway's sliding window: throttle a request that would be one too many."""
        if self.gateway_limit is None:
            return None
        now = time.monotonic()
        while self._accepted and now - self._accepted[0] >= self.gateway_window:
            self._accepted.popleft()
        if len(self._accepted) >= self.gateway_limit:
            self.gateway_throttled += 1
            unit = {1: "1 second", 60: "1 minute"}.get(self.gateway_window)
            time_ = unit or f"{self.gateway_window} second"
            policy = f": policy user over ratelimit,limit:{self.gateway_limit},time:{time_}"
            return self._throttled("APIG.0308", policy)
        self._accepted.append(now)
        return None

    async def _faulty(self, request: web.Request) -> web.Response | None:
        """Roll the dice for this request; an answer here replaces the real one."""
        f, roll = self.faults, self._rng.random
        if f.latency:
            await anyio.sleep(f.latency)
        if f.timeout and roll() < f.timeout:
            await anyio.sleep(f.timeout_seconds)
        if f.throttle and roll() < f.throttle:
            return self._throttled()
        status = self.variant.server_error_status
        if request.query.get("queue_name") in f.failing_queues:
            return self.error(status, "DLI.0999", "Internal service error")
        if f.server_error and roll() < f.server_error:
            return self.error(status, "DLI.0999", "Internal service error")
        return None

    def _check_project(self, request: web.Request) -> web.Response | None:
        if request.match_info["project_id"] != self.world.project_id:
            return self.error(400, "DLI.0001", "Parameter check errors occur: project_id")
        return None

    # -- handlers ----------------------------------------------------------------------------

    async def list_batches(self, request: web.Request) -> web.Response:
        q = request.query
        if self.faults.churn and self._rng.random() < self.faults.churn:
            queue = q.get("queue_name") or q.get("cluster_name")
            self.world.churn(queue or self._rng.choice(self.world.queues))
        rid = uuid.uuid4().hex
        answer = list_answer(self.world, q, self.variant, rid)
        if answer.status == 200:
            if q.get("from", "0") in ("", "0"):
                self.first_pages += 1
            elif not answer.doc["sessions"]:
                self.pages_past_end += 1
        if (
            answer.status == 200
            and self.faults.malformed
            and self._rng.random() < self.faults.malformed
        ):
            return self._malformed(answer.doc)
        return self._respond(answer, rid)

    def _malformed(self, doc: dict[str, object]) -> web.Response:
        kind = self._rng.randrange(3)
        if kind == 0:
            body = orjson.dumps(doc)[: self._rng.randrange(1, 40)]  # torn body
        elif kind == 1:
            body = orjson.dumps({**doc, "total": "many"})
        else:
            body = orjson.dumps({**doc, "sessions": {"oops": True}})
        return web.Response(
            body=body, content_type="application/json", headers={"X-Request-Id": uuid.uuid4().hex}
        )

    async def show_batch(self, request: web.Request) -> web.Response:
        rid = uuid.uuid4().hex
        batch_id = request.match_info["batch_id"]
        return self._respond(
            detail_answer(self.world, batch_id, self.variant, state_only=False, request_id=rid), rid
        )

    async def show_batch_state(self, request: web.Request) -> web.Response:
        rid = uuid.uuid4().hex
        batch_id = request.match_info["batch_id"]
        return self._respond(
            detail_answer(self.world, batch_id, self.variant, state_only=True, request_id=rid), rid
        )

    async def stats(self, request: web.Request) -> web.Response:
        """What the simulator counted (benchmarks read requests where the API would see them);
        outside the API's paths, unsigned, and not counted itself."""
        del request
        return web.json_response(
            {
                "requests": self.requests,
                "first_pages": self.first_pages,
                "pages_past_end": self.pages_past_end,
                "throttled": self.gateway_throttled,
            }
        )

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path == STATS_PATH:
            return await handler(request)
        self.requests += 1
        self.request_log.append((time.monotonic(), request.path))
        throttled = self._gateway()
        if throttled is not None:
            return throttled
        fault = await self._faulty(request)
        if fault is not None:
            return fault
        if self.credentials is not None:
            body = await request.read()
            signed = OutgoingRequest(
                request.method, request.host, request.path, tuple(request.query.items()), body
            )
            why = verify_signature(signed, request.headers, *self.credentials, now=self._clock())
            if why is not None:
                return self.error(401, "APIGW.0301", why)
        if "project_id" in request.match_info:
            bad = self._check_project(request)
            if bad is not None:
                return bad
        self.world.advance(self.now_ms())
        return await handler(request)

    @web.middleware
    async def dated(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Stamp every answer with the simulator's clock, which tests may set apart from ours."""
        response = await handler(request)
        response.headers["Date"] = email.utils.formatdate(self._clock(), usegmt=True)
        return response


SIMULATOR = web.AppKey("simulator", Simulator)
#: the simulator's own counters, as JSON (not part of the DLI API)
STATS_PATH = "/_simulator/stats"


def make_app(sim: Simulator) -> web.Application:
    """The aiohttp application serving ``sim``."""
    app = web.Application(middlewares=[sim.dated, sim.middleware])
    base = "/v2.0/{project_id}/batches"
    app.router.add_get(base, sim.list_batches)
    app.router.add_get(base + "/{batch_id}", sim.show_batch)
    app.router.add_get(base + "/{batch_id}/state", sim.show_batch_state)
    app.router.add_get(STATS_PATH, sim.stats)
    app[SIMULATOR] = sim
    return app


@asynccontextmanager
async def running_simulator(
    sim: Simulator, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[str]:
    """Serve ``sim`` until the block exits; yields its base URL (``port=0``: a free port)."""
    async with serve(make_app(sim), host, port) as addresses:
        bound = addresses[0].rpartition(":")[2]
        shown = f"[{host}]" if ":" in host else host
        yield f"http://{shown}:{bound}"
