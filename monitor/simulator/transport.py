"""The simulated DLI without a socket: a :class:`~monitor.dli.transport.Transport` answering in
memory from the same pure functions the HTTP simulator serves (:mod:`monitor.simulator.api`).

Under the real :class:`~monitor.dli.client.DLIClient` (its retries, budget and parsers) the poll
rules run against every :class:`ApiVariant` in milliseconds, with time moving only when the world
is advanced. No faults, signatures or clock of its own: those are the HTTP simulator's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import anyio.lowlevel
import orjson

from monitor.dli.transport import Request, Response
from monitor.simulator.api import Answer, ApiVariant, detail_answer, error_body, list_answer
from monitor.simulator.world import World

__all__ = ["InMemoryTransport"]

_ROUTE = re.compile(r"^/v2\.0/(?P<project>[^/]+)/batches(?:/(?P<batch>[^/]+)(?P<state>/state)?)?$")


@dataclass
class InMemoryTransport:
    """``world``'s project as ``variant`` answers it."""

    world: World
    variant: ApiVariant = field(default_factory=ApiVariant)
    max_concurrency: int = 4
    #: every request sent, in order
    sent: list[Request] = field(default_factory=list)

    async def send(self, request: Request) -> Response:
        self.sent.append(request)
        # In flight: other requests may be sent before this one is answered, as on a network.
        await anyio.lowlevel.checkpoint()
        rid = f"rid-{len(self.sent)}"
        answer = self.answer(request, rid)
        return Response(answer.status, orjson.dumps(answer.doc), {"x-request-id": rid})

    def answer(self, request: Request, request_id: str) -> Answer:
        """The simulator's answer to ``request`` (a 404 for a path it does not serve)."""
        route = _ROUTE.match(request.path)
        if route is None or route["project"] != self.world.project_id:
            code = "DLI.0001" if route else "APIGW.0101"
            doc = error_body(code, f"no such resource: {request.path}", "error_code", request_id)
            return Answer(400 if route else 404, doc)
        if route["batch"] is None:
            return list_answer(self.world, dict(request.query), self.variant, request_id)
        return detail_answer(
            self.world,
            route["batch"],
            self.variant,
            state_only=bool(route["state"]),
            request_id=request_id,
        )
