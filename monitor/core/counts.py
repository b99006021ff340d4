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

__all__ = ["Counts", "advance", "terminal_counts"]

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
