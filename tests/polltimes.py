"""When the daemon's applied polls ran, measured in the run itself.

The judge (:func:`tests.truth.compare`) requires every state that lasted long enough to be
certainly seen. How long that is follows from the polls' real timing, not from a constant: an
applied poll reads each job at some instant between its start and its end, so of two successive
applied polls ``k`` and ``k+1`` of a queue, a state that began at or after ``start[k]`` and
lasted longer than ``end[k+1] - start[k]`` was read by poll ``k+1`` at the latest. The largest
such gap of a run is its bound: under a loaded CI the polls slow down and the bound grows with
them, on an idle machine it is about one interval, tighter than any constant that tolerates both.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import pairwise

import anyio
import pytest

from monitor.poll.poller import QueuePoller

__all__ = ["PollTimes", "timing_polls"]


class PollTimes:
    """(start, end) wall times of every applied poll, per poller."""

    def __init__(self) -> None:
        self.spans: dict[QueuePoller, list[tuple[float, float]]] = defaultdict(list)

    async def settle(
        self, after: float, *, project_id: str | None = None, polls: int = 2, within: float = 30
    ) -> None:
        """Wait until every poller (of ``project_id``) has applied ``polls`` polls that started
        after ``after`` (wall time): the world as it was then is then wholly reported, however
        slow the polls were. The daemon keeps its schedule; ``within`` bounds a wedged one."""

        def settled() -> bool:
            mine = [
                spans
                for poller, spans in self.spans.items()
                if project_id in (None, poller.scope.project_id)
            ]
            return bool(mine) and all(sum(s > after for s, _ in spans) >= polls for spans in mine)

        with anyio.fail_after(within):
            while not settled():
                await anyio.sleep(0.02)

    def min_seen_ms(self, project_id: str, *, after_ms: int) -> dict[str, int]:
        """Per queue of ``project_id``: how long a state entered after ``after_ms`` must last
        to be certainly read by an applied poll (one millisecond past the largest gap)."""
        after = after_ms / 1000
        bounds: dict[str, int] = {}
        for poller, spans in self.spans.items():
            if poller.scope.project_id != project_id:
                continue
            gaps = [end - max(start, after) for (start, _), (_, end) in pairwise(spans)]
            relevant = [g for g in gaps if g > 0]
            assert relevant, f"{poller.polled.label}: fewer than two applied polls to judge by"
            # +2: the world's clock counts whole milliseconds, ours fractions of them
            ms = math.ceil(max(relevant) * 1000) + 2
            bounds[poller.polled.label] = max(bounds.get(poller.polled.label, 0), ms)
        assert bounds, f"no applied poll of {project_id}"
        return bounds


@contextmanager
def timing_polls(monkeypatch: pytest.MonkeyPatch) -> Iterator[PollTimes]:
    """Record the span of every applied poll of every poller while the block runs."""
    times = PollTimes()
    original = QueuePoller.poll

    async def timed(self: QueuePoller) -> bool:
        started = time.time()
        applied = await original(self)
        if applied:
            times.spans[self].append((started, time.time()))
        return applied

    monkeypatch.setattr(QueuePoller, "poll", timed)
    yield times
