"""SIGTERM and SIGINT from the moment the process can act on them.

Kubernetes sends SIGTERM whenever a pod is deleted, also while the process is still importing
its modules. Python's default action then kills it (exit -15, 143 in a container), which an
operator reads as a crash. So the command's first statement calls :func:`hold`: from then on a
signal is recorded instead, and the daemon's own receiver, once it is in place, acts on a
recorded one at once (:func:`pending`), as gracefully as on any other: ``monitor.stopping``,
state file flushed, exit 0. A command that installs no receiver of its own calls
:func:`release`, which restores the default actions and delivers a held signal.
"""

from __future__ import annotations

import signal
from types import FrameType

__all__ = ["SIGNALS", "hold", "pending", "release"]

#: the signals a graceful stop answers
SIGNALS = (signal.SIGTERM, signal.SIGINT)

_held: list[signal.Signals] = []
_holding = False


def _record(signum: int, _frame: FrameType | None) -> None:
    _held.append(signal.Signals(signum))


def hold() -> None:
    """Record SIGTERM and SIGINT instead of acting on them, until a receiver takes over."""
    global _holding  # noqa: PLW0603 (a signal's disposition is process-wide, so is this flag)
    _holding = True
    _held.clear()
    for signum in SIGNALS:
        signal.signal(signum, _record)


def pending() -> signal.Signals | None:
    """The first signal recorded since :func:`hold`, if any (it is then handled: cleared)."""
    return _held.pop(0) if _held else None


def release() -> None:
    """Restore the default actions; a signal held until now is delivered now. Without a
    :func:`hold` before (the command called in-process, as tests do) it changes nothing."""
    global _holding  # noqa: PLW0603 (see hold)
    if not _holding:
        return
    _holding = False
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    held = pending()
    _held.clear()
    if held is not None:
        signal.raise_signal(held)
