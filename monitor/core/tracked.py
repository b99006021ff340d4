"""What the snapshot keeps of each known job: only what a later poll needs.

A job that can still change (:class:`ActiveJob`) keeps what describes it in an event, because
the event that reports its end may have no fresh reading (a job that vanished, or was
forgotten); a transition takes the rest (update time, duration) from the fresh reading. A
finished job (:class:`FinishedJob`) can never change again: the snapshot only counts it per
(queue, state), tells history from news by its creation time, and remembers its id. That is
three references, which is what keeps a queue with a long history cheap (``python -m bench``,
figure 4).

Both are frozen msgspec structs without GC tracking: they only refer to strings, ints and other
such records, so they can never be part of a reference cycle.
"""

from __future__ import annotations

import sys

import msgspec

from monitor.core.jobs import Job, JobState

__all__ = ["ActiveJob", "FinishedJob", "TrackedJob", "track"]


class ActiveJob(msgspec.Struct, frozen=True, gc=False):
    """A job in a state it can leave: since when (Unix ms) it has been in that state, how many
    times it has entered ``recovering`` (which tells repeated recovery cycles apart), since when
    it has been missing from the listings, unconfirmed, and what describes it in an event."""

    id: str
    state: JobState
    queue: str
    since_ms: int
    recoveries: int = 0
    missing_since_ms: int | None = None
    create_time: int | None = None
    name: str = ""
    owner: str = ""
    app_id: str = ""
    kind: str = ""
    sc_type: str = ""

    @classmethod
    def of(
        cls, job: Job, since_ms: int, recoveries: int, missing_since_ms: int | None = None
    ) -> ActiveJob:
        # Interned: these outlive the page, and repeat for every job of a queue or a team.
        intern = sys.intern
        return cls(
            job.id,
            job.state,
            intern(job.queue),
            since_ms,
            recoveries,
            missing_since_ms,
            job.create_time,
            job.name,
            intern(job.owner),
            job.app_id,
            intern(job.kind),
            intern(job.sc_type),
        )

    @property
    def job(self) -> Job:
        """The last reading, as far as it is kept: what an event about the job shows."""
        return Job(
            self.id,
            self.state,
            self.queue,
            self.name,
            self.owner,
            self.app_id,
            self.kind,
            self.sc_type,
            self.create_time,
        )


class FinishedJob(msgspec.Struct, frozen=True, gc=False):
    """A job in a terminal state, which is final: counted, and told apart from history."""

    state: JobState
    queue: str
    create_time: int | None = None

    @classmethod
    def of(cls, job: Job) -> FinishedJob:
        # Interned: the record outlives the page, and a queue name repeats for every job in it.
        return cls(job.state, sys.intern(job.queue), job.create_time)


TrackedJob = ActiveJob | FinishedJob


def track(job: Job, now_ms: int) -> TrackedJob:
    """The record of a job seen for the first time (or again, after it was forgotten)."""
    if job.state.terminal:
        return FinishedJob.of(job)
    if job.update_time is not None:
        since = job.update_time
    elif job.state is JobState.STARTING and job.create_time is not None:
        since = job.create_time
    else:
        since = now_ms
    return ActiveJob.of(job, since, 1 if job.state is JobState.RECOVERING else 0)
