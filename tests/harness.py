"""Running the product inside a test: a daemon in this process (started, optionally awaited until
ready, always stopped), or the installed command in a subprocess stopped as Kubernetes stops it."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial

import anyio

from monitor.app.daemon import Daemon


def free_port() -> int:
    """A loopback port nothing listens on (now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


@dataclass(frozen=True)
class Stopped:
    """What a command printed and how it ended."""

    first_line: str
    returncode: int
    #: stdout after the first line
    out: str
    err: str
    #: from SIGTERM to exit (0 when it ended by itself)
    stop_seconds: float


def stop_after_first_line(
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    stop_if: Callable[[str], bool] = lambda line: True,
) -> Stopped:
    """``python -m monitor *args``: read its first stdout line, then send SIGTERM (if
    ``stop_if`` says so of that line) and collect the rest."""
    with subprocess.Popen(
        [sys.executable, "-m", "monitor", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        stop = stop_if(first)
        started = time.monotonic()
        if stop:
            proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
        seconds = time.monotonic() - started if stop else 0.0
    return Stopped(first, proc.returncode, out, err, seconds)
