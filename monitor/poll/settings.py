"""What a poller is given: which queue it lists and how it polls; and the fixed grid its polls
start on."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from monitor.poll.strategy import StrategySetting

__all__ = ["ALL_QUEUES", "PollSettings", "PolledQueue", "next_start"]

#: the ``queue`` label of self metrics when no queues are configured (one project-wide poller)
ALL_QUEUES = "*"


@dataclass(frozen=True, slots=True)
class PolledQueue:
    """What one poller lists: one queue, or (``queue=None``) every job of the project."""

    queue: str | None

    @property
    def label(self) -> str:
        return self.queue or ALL_QUEUES


@dataclass(frozen=True, slots=True)
class PollSettings:
    """How a poller polls: its schedule, page size, retry budget and strategy, and its clock."""

    #: seconds between the starts of two polls
    interval: float
    page_size: int = 100
    #: retries one poll may spend across all its requests (and a quarter more per request)
    retries_per_poll: int = 8
    #: a poll running longer is cut off (default: three intervals, at least a minute)
    poll_timeout: float | None = None
    strategy: StrategySetting = "full"
    #: seconds between recounts of the terminal states while polling incrementally
    recount_interval: float = 600.0
    #: requests per second a recount that lists every job may send (a share of the ceiling)
    recount_rps: float | None = None
    #: wall time: when the API's own timestamps are missing, and for the fixed grid of polls
    clock: Callable[[], float] = time.time


def next_start(started: float, now: float, interval: float) -> float:
    """When the poll after one that started at ``started`` starts, seen at ``now``: one interval
    later, or if the poll ran past that, the first slot of the same grid still ahead (missed
    slots are skipped, not made up for)."""
    due = started + interval
    if due < now:
        due += math.ceil((now - due) / interval) * interval
    return due
