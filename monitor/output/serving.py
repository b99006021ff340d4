"""Serving an aiohttp application on one address, for the daemon's endpoints and the simulator
alike; a failure to bind is a :class:`ListenError` and nothing else."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

__all__ = ["ListenError", "serve"]


class ListenError(Exception):
    """The server could not bind its address (taken, not ours, no such interface)."""

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(f"cannot listen on {address}: {reason}")
        self.address = address
        self.reason = reason


@asynccontextmanager
async def serve(app: web.Application, host: str, port: int) -> AsyncIterator[list[str]]:
    """Serve ``app`` until the block exits; yields the bound addresses as ``host:port``.

    A failure to bind raises :class:`ListenError`, so that callers never take another
    ``OSError`` (a closed stdout, a full disk) for one."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            shown = f"[{host}]" if ":" in host else host
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise ListenError(f"{shown}:{port}", reason) from exc
        yield [f"{addr[0]}:{addr[1]}" for addr in runner.addresses]
    finally:
        await runner.cleanup()
