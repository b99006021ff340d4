"""A SIGTERM that arrives while the process is still starting is held, then honoured gracefully
by the daemon's receiver as soon as it is in place (``monitor.app.shutdown``)."""

from __future__ import annotations

import io
import signal
from collections.abc import Iterator

import anyio
import pytest

from monitor.app import shutdown
from monitor.app.config import Settings
from monitor.app.daemon import Daemon
from monitor.output.events import configure_logging
from monitor.simulator import Simulator, World, running_simulator


@pytest.fixture
def holding() -> Iterator[None]:
    shutdown.hold()
    try:
        yield
    finally:
        shutdown.pending()  # whatever a test left held is dropped, not delivered to pytest
        shutdown.release()


@pytest.mark.usefixtures("holding")
def test_a_held_signal_is_recorded_once_in_order() -> None:
    signal.raise_signal(signal.SIGTERM)
    signal.raise_signal(signal.SIGINT)  # no KeyboardInterrupt while held
    assert shutdown.pending() is signal.SIGTERM
    assert shutdown.pending() is signal.SIGINT
    assert shutdown.pending() is None


def test_release_without_hold_changes_no_disposition() -> None:
    before = signal.getsignal(signal.SIGTERM)
    shutdown.release()
    assert signal.getsignal(signal.SIGTERM) is before


def test_release_delivers_a_held_signal_with_its_default_action() -> None:
    shutdown.hold()
    signal.raise_signal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        shutdown.release()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.usefixtures("holding")
async def test_the_daemon_stops_at_once_on_a_signal_held_while_it_started() -> None:
    out = io.StringIO()
    configure_logging("json", out)
    world = World("heldproject", ("etl",), seed=1, now_ms=1_700_000_000_000, initial_jobs=3)
    async with running_simulator(Simulator(world)) as url:
        daemon = Daemon(
            Settings(
                project_id="heldproject",
                endpoint=url,
                queues=("etl",),
                auth="none",
                listen="127.0.0.1:0",
            )
        )
        signal.raise_signal(signal.SIGTERM)  # before the daemon has a receiver of its own
        with anyio.fail_after(5):
            await daemon.run()  # returns: the held SIGTERM stopped it
    assert shutdown.pending() is None, "handled, not left for later"
