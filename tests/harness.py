"""Running a daemon inside a test: started, optionally awaited until ready, always stopped."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import anyio

from monitor.daemon import Daemon


@asynccontextmanager
async def running(
    daemon: Daemon, *, ready: bool = True, within: float = 10
) -> AsyncIterator[Daemon]:
    """Run ``daemon`` for the block (in this task's task group, so use it inside the test, not
    in a fixture). With ``ready``, wait first until every queue has been polled once."""
    async with anyio.create_task_group() as tg:
        await tg.start(partial(daemon.run, handle_signals=False))
        try:
            if ready:
                with anyio.fail_after(within):
                    while not daemon.ready()[0]:
                        await anyio.sleep(0.02)
            yield daemon
        finally:
            daemon.stop()
