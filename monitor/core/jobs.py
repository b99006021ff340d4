"""What a DLI batch job is, as every layer sees it: its five states and one reading of it.

Pure values: the parsers (``monitor.dli.models``) build them, the snapshot diffs them.
"""

from __future__ import annotations

import enum

import msgspec

__all__ = ["ACTIVE_STATES", "TERMINAL_STATES", "Job", "JobState", "parse_state"]


class JobState(enum.StrEnum):
    """The five states of a DLI (Livy) batch job."""

    STARTING = "starting"
    RUNNING = "running"
    RECOVERING = "recovering"
    SUCCESS = "success"
    DEAD = "dead"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES


ACTIVE_STATES = frozenset({JobState.STARTING, JobState.RUNNING, JobState.RECOVERING})
TERMINAL_STATES = frozenset({JobState.SUCCESS, JobState.DEAD})
_STATES: dict[str, JobState] = {s.value: s for s in JobState}


def parse_state(raw: str) -> JobState | None:
    """A state as the API spells it (``running``, ``Running``, ``RUNNING``), or ``None``."""
    return _STATES.get(raw.strip().lower())


class Job(msgspec.Struct, frozen=True, gc=False):
    """One job as one API answer showed it. Times are Unix milliseconds, ``None`` when absent."""

    id: str
    state: JobState
    queue: str
    name: str = ""
    owner: str = ""
    app_id: str = ""
    kind: str = ""
    sc_type: str = ""
    create_time: int | None = None
    update_time: int | None = None
    duration_ms: int | None = None
