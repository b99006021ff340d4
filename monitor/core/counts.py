"""Terminal-state counts kept between recounts: the last count plus the jobs seen finishing.

Pure. Incremental polls list only what can have changed, so the finished jobs of a long history
are counted rather than listed: from a full listing's snapshot, or from the API's ``total``, and
then moved on by each applied poll's changes. Expiry (history the API stops listing) is the one
thing they miss, until the next recount replaces them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from monitor.core.jobs import JobState
from monitor.core.snapshot import Change, Discovered, StateSummary, Transition

__all__ = ["Counts", "KeptCounts", "advance", "counts_by_queue", "terminal_counts"]

Counts = dict[tuple[str, JobState], int]


def terminal_counts(summary: StateSummary) -> Counts:
    """The terminal-state counts of a snapshot that holds every job (after a full listing)."""
    return {key: n for key, n in summary.counts.items() if key[1].terminal}


def advance(counts: Mapping[tuple[str, JobState], int], changes: Iterable[Change]) -> Counts:
    """``counts`` after the jobs ``changes`` saw finish (a transition to a terminal state, or a
    new job found finished) are added. Nothing else moves a terminal count: a terminal state is
    final, and a vanished or forgotten job was active."""
    result = dict(counts)
    for change in changes:
        match change:
            case Transition(to_state=state) if state.terminal:
                key = (change.job.queue, state)
            case Discovered(job=job) if job.state.terminal:
                key = (job.queue, job.state)
            case _:
                continue
        result[key] = result.get(key, 0) + 1
    return result


def counts_by_queue(summary: StateSummary, queues: Iterable[str]) -> dict[str, dict[JobState, int]]:
    """The summary's counts per queue, every queue of ``queues`` present (empty if it has no
    job): what a baseline event reports."""
    result: dict[str, dict[JobState, int]] = {q: {} for q in queues}
    for (queue, state), count in summary.counts.items():
        result.setdefault(queue, {})[state] = count
    return result


class KeptCounts:
    """The terminal counts of one poller between recounts: ``None`` while its full listings
    count them (the snapshot holds every job then); else the last count plus the jobs seen
    finishing since, and when (wall seconds; ``None``: never) that count was made."""

    __slots__ = ("_base", "_counts", "_summary", "counted_at")

    def __init__(
        self,
        counts: Mapping[tuple[str, JobState], int] | None = None,
        counted_at: float | None = None,
    ) -> None:
        self._counts = dict(counts) if counts is not None else None
        self.counted_at = counted_at
        self._base: StateSummary | None = None
        self._summary: StateSummary | None = None

    @property
    def counts(self) -> Mapping[tuple[str, JobState], int] | None:
        return self._counts

    def due(self, now: float, interval: float) -> bool:
        """A recount is due (never counted, or ``interval`` seconds since)."""
        return self.counted_at is None or now - self.counted_at >= interval

    def summary(self, base: StateSummary) -> StateSummary:
        """``base`` (a snapshot's summary) with these terminal counts, made once per change."""
        if self._counts is None:
            return base
        if self._summary is None or self._base is not base:
            self._base, self._summary = base, base.with_terminal_counts(self._counts)
        return self._summary

    def listed_everything(self, now: float) -> None:
        """A full listing counted every job: the snapshot's counts hold from now on."""
        self._counts, self.counted_at, self._summary = None, now, None

    def observed(self, before: StateSummary | None, changes: Iterable[Change]) -> None:
        """An incremental poll saw ``changes``; the first after a full listing starts from
        that listing's counts (``before``)."""
        start = self._counts
        if start is None:
            start = terminal_counts(before) if before is not None else {}
        self._counts, self._summary = advance(start, changes), None

    def recounted(self, queue: str, totals: Mapping[JobState, int], now: float) -> None:
        """The API counted ``queue``'s terminal states."""
        counts = self._counts if self._counts is not None else {}
        for state, n in totals.items():
            counts[(queue, state)] = n
        self._counts, self.counted_at, self._summary = counts, now, None
