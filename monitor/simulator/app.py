"""The simulator's HTTP face: DLI's batch endpoints over aiohttp, with optional faults.

Endpoints: ``GET /v2.0/{project_id}/batches`` (offset paging and every documented filter, plus
``order``, ``start`` and ``end``), ``GET …/batches/{batch_id}`` and ``…/{batch_id}/state``.
Bad parameters answer 400 ``DLI.0001`` and unknown ids 400 ``DLI.0002``, in DLI's error body.
"""

from __future__ import annotations

import email.utils
import random
import re
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
from monitor.dli.models import JobState
from monitor.simulator.gateway import verify_signature
from monitor.simulator.world import World

__all__ = ["Faults", "Simulator", "make_app", "running_simulator"]

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_ORDERS = frozenset({"CREATE_TIME_DESC", "CREATE_TIME_ASC", "DURATION_DESC", "DURATION_ASC"})
MAX_PAGE_SIZE = 1000


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
    #: answer as an API version that does not know the ``state`` filter would
    ignore_state_filter: bool = False


class Simulator:
    """A :class:`World` behind DLI's HTTP API. ``clock`` gives Unix seconds."""

    def __init__(
        self,
        world: World,
        *,
        faults: Faults | None = None,
        seed: int = 0,
        credentials: tuple[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.world = world
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

    @staticmethod
    def error(status: int, code: str, message: str) -> web.Response:
        return web.json_response(
            {"error_code": code, "error_msg": message},
            status=status,
            headers={"X-Request-Id": uuid.uuid4().hex},
            dumps=lambda o: orjson.dumps(o).decode(),
        )

    @staticmethod
    def ok(doc: object) -> web.Response:
        return web.Response(
            body=orjson.dumps(doc),
            content_type="application/json",
            headers={"X-Request-Id": uuid.uuid4().hex},
        )

    async def _faulty(self, request: web.Request) -> web.Response | None:
        """Roll the dice for this request; an answer here replaces the real one."""
        f, roll = self.faults, self._rng.random
        if f.latency:
            await anyio.sleep(f.latency)
        if f.timeout and roll() < f.timeout:
            await anyio.sleep(f.timeout_seconds)
        if f.throttle and roll() < f.throttle:
            response = self.error(429, "APIGW.0308", "The throttling threshold has been reached")
            response.headers["Retry-After"] = f"{f.retry_after:g}"
            return response
        if request.query.get("queue_name") in f.failing_queues:
            return self.error(500, "DLI.0999", "Internal service error")
        if f.server_error and roll() < f.server_error:
            return self.error(500, "DLI.0999", "Internal service error")
        return None

    def _check_project(self, request: web.Request) -> web.Response | None:
        if request.match_info["project_id"] != self.world.project_id:
            return self.error(400, "DLI.0001", "Parameter check errors occur: project_id")
        return None

    # -- handlers ----------------------------------------------------------------------------

    async def list_batches(self, request: web.Request) -> web.Response:
        q = request.query

        def integer(name: str, default: int, hi: int) -> int:
            raw = q.get(name)
            if raw is None or raw == "":
                return default
            if not raw.isdigit() or int(raw) > hi:
                raise ValueError(name)
            return int(raw)

        try:
            offset = integer("from", 0, 2**31)
            size = integer("size", 100, MAX_PAGE_SIZE)
            start = integer("start", -1, 2**62)
            end = integer("end", -1, 2**62)
            state_raw = q.get("state")
            state = JobState(state_raw) if state_raw else None
            order = q.get("order") or "CREATE_TIME_DESC"
            if order not in _ORDERS:
                raise ValueError("order")
        except ValueError as exc:
            name = str(exc).split("'")[1] if "'" in str(exc) else str(exc)
            return self.error(400, "DLI.0001", f"Parameter check errors occur: {name}")
        queue = q.get("queue_name") or q.get("cluster_name") or None
        if self.faults.churn and self._rng.random() < self.faults.churn:
            self.world.churn(queue or self._rng.choice(self.world.queues))
        jobs = self.world.select(
            queue=queue,
            state=None if self.faults.ignore_state_filter else state,
            job_id=q.get("job-id") or None,
            job_name=q.get("job_name") or None,
            owner=q.get("owner") or None,
            start=None if start < 0 else start,
            end=None if end < 0 else end,
            order=order,
        )
        now = self.world.now_ms
        rows = [job.row(now) for job in jobs[offset : offset + size]]
        doc = {"from": offset, "total": len(jobs), "sessions": rows}
        if self.faults.malformed and self._rng.random() < self.faults.malformed:
            return self._malformed(doc)
        return self.ok(doc)

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

    def _job(self, request: web.Request) -> tuple[object, web.Response | None]:
        batch_id = request.match_info["batch_id"]
        if not _UUID.match(batch_id):
            return None, self.error(400, "DLI.0001", "Parameter check errors occur: batch_id")
        job = self.world.jobs.get(batch_id)
        if job is None:
            return None, self.error(400, "DLI.0002", "The object does not exist.")
        return job, None

    async def show_batch(self, request: web.Request) -> web.Response:
        job, err = self._job(request)
        if err is not None:
            return err
        return self.ok(job.detail(self.world.now_ms))  # type: ignore[attr-defined]

    async def show_batch_state(self, request: web.Request) -> web.Response:
        job, err = self._job(request)
        if err is not None:
            return err
        return self.ok({"id": job.id, "state": job.state.value})  # type: ignore[attr-defined]

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        self.requests += 1
        self.request_log.append((time.monotonic(), request.path))
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


def make_app(sim: Simulator) -> web.Application:
    """The aiohttp application serving ``sim``."""
    app = web.Application(middlewares=[sim.dated, sim.middleware])
    base = "/v2.0/{project_id}/batches"
    app.router.add_get(base, sim.list_batches)
    app.router.add_get(base + "/{batch_id}", sim.show_batch)
    app.router.add_get(base + "/{batch_id}/state", sim.show_batch_state)
    app[SIMULATOR] = sim
    return app


@asynccontextmanager
async def running_simulator(
    sim: Simulator, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[str]:
    """Serve ``sim`` until the block exits; yields its base URL (``port=0``: a free port)."""
    runner = web.AppRunner(make_app(sim), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1]
        shown = f"[{host}]" if ":" in host else host
        yield f"http://{shown}:{bound}"
    finally:
        await runner.cleanup()
