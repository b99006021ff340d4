"""What a poller keeps besides its snapshot, so that a restart resumes rather than relearns.

Pure values: the poller makes one after each applied poll and takes one back at start-up; the
state file (:mod:`monitor.state.codec`) writes and reads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from monitor.core.jobs import JobState

__all__ = ["ResumeState"]


@dataclass(frozen=True, slots=True)
class ResumeState:
    """A poller's counts and guesses: the terminal counts it keeps between recounts (``None``:
    the snapshot counts them), when it last counted them (Unix ms), and each listing pass's
    size the last time (the next pass's guess)."""

    kept: Mapping[tuple[str, JobState], int] | None = None
    counted_at_ms: int | None = None
    sizes: Mapping[str, int] = field(default_factory=dict)
