"""The snapshot of known jobs and the diff that turns a fresh listing into changes.

Pure: no I/O and no clock. The poller passes the poll time in and gets back a new snapshot and
the changes to publish; the old snapshot is never modified, so a pass that fails half-way is
simply dropped and nothing is half-applied.

Rules (the product design's "Semantics that must hold", shared/DESIGN.md beside the repository):

* a state is reported once per observed change, in order; a terminal state is final, and a state
  that would move a job backwards (a stale read while paging) is ignored, never reported;
* a job missing from a listing is not gone: active ones are confirmed by a detail request first
  (the poller fills ``Observation.confirmed`` / ``Observation.gone``); terminal ones are forgotten
  silently, but only after a listing known to be complete, and their ids are remembered for a
  while (tombstones) so that paging churn cannot make an old job look new;
* an active job that stays missing and unconfirmed (its detail requests fail, or answer with
  something other than the code table's "does not exist") is kept, never reported as vanished;
  after :data:`UNCONFIRMED_TTL_MS` it is forgotten with a ``Forgotten`` change, so a job the API
  no longer shows cannot stay counted as active forever.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import msgspec

from monitor.core.jobs import Job, JobState
from monitor.core.tracked import ActiveJob, FinishedJob, TrackedJob, track

__all__ = [
    "DIRECT_EDGES",
    "UNCONFIRMED_TTL_MS",
    "Change",
    "Diff",
    "Discovered",
    "Forgotten",
    "JobSnapshot",
    "Observation",
    "StateSummary",
    "Transition",
    "Vanished",
]

S = JobState
#: an active job missing from every listing, whose absence no detail answer confirmed, is
#: forgotten after this long (Unix ms)
UNCONFIRMED_TTL_MS = 3_600_000

#: The lifecycle's edges. A change along any other forward path skipped a state in between.
DIRECT_EDGES: frozenset[tuple[JobState, JobState]] = frozenset(
    {
        (S.STARTING, S.RUNNING),
        (S.STARTING, S.DEAD),  # a job can fail to launch
        (S.RUNNING, S.SUCCESS),
        (S.RUNNING, S.DEAD),
        (S.RUNNING, S.RECOVERING),
        (S.RECOVERING, S.RUNNING),
        (S.RECOVERING, S.DEAD),
    }
)

# running and recovering alternate; everything else only moves forward.
_RANK = {S.STARTING: 0, S.RUNNING: 1, S.RECOVERING: 1, S.SUCCESS: 2, S.DEAD: 2}


def is_forward(old: JobState, new: JobState) -> bool:
    """True if ``old`` → ``new`` can really happen (a later state, or running ↔ recovering)."""
    if old is new or old.terminal:
        return False
    return _RANK[new] > _RANK[old] or _RANK[new] == _RANK[old] == 1


@dataclass(frozen=True, slots=True)
class Discovered:
    """A job appeared that the snapshot did not know."""

    job: Job


@dataclass(frozen=True, slots=True)
class Transition:
    """A known job's state changed. ``occurrence`` numbers repeats of the same change (recovery
    cycles); it is 1 for every change that can only happen once."""

    job: Job
    from_state: JobState
    to_state: JobState
    skipped: bool
    in_state_seconds: float
    duration_ms: int | None
    occurrence: int = 1


@dataclass(frozen=True, slots=True)
class Vanished:
    """An active job left the listing and its detail request said it no longer exists."""

    job: Job
    last_state: JobState


@dataclass(frozen=True, slots=True)
class Forgotten:
    """An active job missing from the listings for :data:`UNCONFIRMED_TTL_MS` whose detail
    never said it no longer exists: dropped, without claiming it vanished."""

    job: Job
    last_state: JobState
    missing_seconds: float


Change = Discovered | Transition | Vanished | Forgotten


@dataclass(frozen=True, slots=True)
class Observation:
    """What one poll saw.

    ``listed``: the deduplicated listing. ``confirmed``: detail answers for active jobs missing
    from it. ``gone``: ids whose detail request said "does not exist". ``complete``: the listing
    is known to hold every job (``total`` did not move while paging), so terminal jobs missing
    from it may be forgotten.
    """

    listed: Mapping[str, Job]
    confirmed: Mapping[str, Job] = field(default_factory=dict)
    gone: frozenset[str] = frozenset()
    complete: bool = True
    #: advances the snapshot's history horizon (see :class:`JobSnapshot`)
    history_before_ms: int | None = None
    #: listed jobs kept as compact records, not readings: finished jobs a baseline records, or
    #: that the snapshot already holds as finished (nothing about them can change)
    finished: Mapping[str, FinishedJob] = field(default_factory=dict)


Key = tuple[str, JobState]


@dataclass(frozen=True, slots=True)
class StateSummary:
    """Per-(queue, state) job counts and, for active states, when the longest-waiting job entered
    the state (Unix ms). Computed once per snapshot so a scrape costs O(queues), not O(jobs)."""

    counts: Mapping[Key, int]
    oldest_since_ms: Mapping[Key, int]

    def queues(self) -> set[str]:
        return {queue for queue, _ in self.counts}

    def with_terminal_counts(self, counts: Mapping[Key, int]) -> StateSummary:
        """This summary with its terminal-state counts replaced by ``counts`` (kept by the
        poller between recounts, rather than the finished jobs this snapshot still holds)."""
        active = {key: n for key, n in self.counts.items() if not key[1].terminal}
        return StateSummary(
            {**active, **{key: n for key, n in counts.items() if n}}, self.oldest_since_ms
        )


@dataclass(frozen=True, slots=True)
class Diff:
    """The result of :meth:`JobSnapshot.diff`: the snapshot to keep and the changes to publish."""

    snapshot: JobSnapshot
    changes: list[Change]


class JobSnapshot(Mapping[str, TrackedJob]):
    """An immutable map of job id → :class:`~monitor.core.tracked.TrackedJob`, tombstones of
    forgotten jobs, and a history horizon.

    Active and finished jobs are kept apart, and the finished ones are counted as they come and
    go: a diff then touches each listed finished job once (a dict lookup, since a terminal state
    is final), and the summary costs O(active jobs), whatever the length of the history.

    The horizon (Unix ms, or ``None``) is set by polls that list only what can have changed:
    finished jobs created before it are history the monitor no longer lists. Met in a later full
    listing (after a restart, or a change of strategy), such a job is counted silently, never
    reported as discovered; forgotten, it needs no tombstone.
    """

    __slots__ = (
        "_active",
        "_finished",
        "_finished_counts",
        "_summary",
        "_tombstones",
        "horizon_ms",
    )

    def __init__(
        self,
        jobs: Mapping[str, TrackedJob] | None = None,
        tombstones: Mapping[str, int] | None = None,
        horizon_ms: int | None = None,
    ) -> None:
        self._active: dict[str, ActiveJob] = {}
        self._finished: dict[str, FinishedJob] = {}
        self._finished_counts: dict[Key, int] = {}
        for job_id, tracked in (jobs or {}).items():
            if isinstance(tracked, ActiveJob):
                self._active[job_id] = tracked
            else:
                self._finished[job_id] = tracked
                _count(self._finished_counts, tracked, 1)
        self._tombstones: dict[str, int] = dict(tombstones or {})
        self._summary: StateSummary | None = None
        self.horizon_ms = horizon_ms

    def __len__(self) -> int:
        return len(self._active) + len(self._finished)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._finished or job_id in self._active

    def __iter__(self) -> Iterator[str]:
        yield from self._active
        yield from self._finished

    def __getitem__(self, job_id: str) -> TrackedJob:
        tracked = self._finished.get(job_id)
        return tracked if tracked is not None else self._active[job_id]

    def __eq__(self, other: object) -> bool:
        return self is other  # a snapshot is a value in time; compare its contents explicitly

    __hash__ = object.__hash__

    @property
    def tombstones(self) -> Mapping[str, int]:
        """Ids of forgotten terminal jobs → when (Unix ms) they were forgotten."""
        return self._tombstones

    @property
    def summary(self) -> StateSummary:
        if self._summary is None:
            counts = dict(self._finished_counts)
            oldest: dict[Key, int] = {}
            for tracked in self._active.values():
                key = (tracked.queue, tracked.state)
                counts[key] = counts.get(key, 0) + 1
                since = oldest.get(key)
                if since is None or tracked.since_ms < since:
                    oldest[key] = tracked.since_ms
            self._summary = StateSummary(counts, oldest)
        return self._summary

    def missing(self, listed: Mapping[str, Job]) -> list[ActiveJob]:
        """Active jobs absent from ``listed``: each needs a detail request before a verdict."""
        return [tracked for job_id, tracked in self._active.items() if job_id not in listed]

    def finished_record(self, job_id: str) -> FinishedJob | None:
        """The record of a finished job this snapshot holds (a listing may keep it in place of
        the job's reading, since nothing about it can change), or ``None``."""
        return self._finished.get(job_id)

    @classmethod
    def baseline(
        cls,
        listed: Iterable[Job],
        *,
        now_ms: int,
        horizon_ms: int | None = None,
        finished: Mapping[str, FinishedJob] | None = None,
    ) -> JobSnapshot:
        """The snapshot of a first poll: every job known (``finished``: those listed as compact
        records already), nothing reported."""
        jobs: dict[str, TrackedJob] = {job.id: track(job, now_ms) for job in listed}
        jobs.update(finished or {})
        return cls(jobs, horizon_ms=horizon_ms)

    def diff(  # noqa: C901, PLR0912, PLR0915 (one pass over listing and snapshot, the hot path)
        self, observation: Observation, *, now_ms: int, tombstone_ttl_ms: int = 3_600_000
    ) -> Diff:
        """Apply one poll's observation; return the next snapshot and the changes, in order."""
        active = dict(self._active)
        finished = dict(self._finished)
        counts = dict(self._finished_counts)
        tombstones = {
            job_id: at for job_id, at in self._tombstones.items() if now_ms - at < tombstone_ttl_ms
        }
        horizon = self.horizon_ms
        if observation.history_before_ms is not None:
            horizon = max(horizon or 0, observation.history_before_ms)
        changes: list[Change] = []
        seen = observation.listed
        if observation.confirmed:
            seen = {**seen, **observation.confirmed}

        def keep(job_id: str, tracked: TrackedJob) -> None:
            if isinstance(tracked, ActiveJob):
                active[job_id] = tracked
            else:
                active.pop(job_id, None)
                finished[job_id] = tracked
                _count(counts, tracked, 1)

        # Listed as records of finished jobs this snapshot holds: seen, and nothing to do.
        finished_seen = sum(1 for job_id in observation.finished if job_id in finished)
        for job_id, job in seen.items():
            if job_id in finished:
                finished_seen += 1
                continue  # a terminal state is final: nothing it is listed with can change it
            prev = active.get(job_id)
            if prev is None:
                # A finished job that paging churn hid from one listing is known, not new: it is
                # tracked again (silently) so that it is counted while the API lists it.
                revived = tombstones.pop(job_id, None) is not None
                keep(job_id, track(job, now_ms))
                if not revived and not _is_history(job, horizon):
                    changes.append(Discovered(job))
            elif prev.state is not job.state and is_forward(prev.state, job.state):
                tracked, transition = _advance(prev, job, now_ms)
                keep(job_id, tracked)
                changes.append(transition)
            elif prev.missing_since_ms is not None:
                active[job_id] = msgspec.structs.replace(prev, missing_since_ms=None)

        for job_id, prev in self._active.items():
            if job_id in seen:
                continue
            missing = prev.missing_since_ms
            if job_id in observation.gone:
                del active[job_id]
                changes.append(Vanished(prev.job, prev.state))
            elif missing is None:
                active[job_id] = msgspec.structs.replace(prev, missing_since_ms=now_ms)
            elif now_ms - missing >= UNCONFIRMED_TTL_MS:
                del active[job_id]
                changes.append(Forgotten(prev.job, prev.state, (now_ms - missing) / 1000))

        # Every finished job listed again (the usual case) leaves none to forget: skip the pass.
        if observation.complete and finished_seen < len(self._finished):
            for job_id, gone in self._finished.items():
                if job_id not in seen and job_id not in observation.finished:
                    del finished[job_id]
                    _count(counts, gone, -1)
                    if not _is_history(gone, horizon):
                        tombstones[job_id] = now_ms
        return Diff(JobSnapshot._of(active, finished, counts, tombstones, horizon), changes)

    @classmethod
    def _of(
        cls,
        active: dict[str, ActiveJob],
        finished: dict[str, FinishedJob],
        counts: dict[Key, int],
        tombstones: dict[str, int],
        horizon_ms: int | None,
    ) -> JobSnapshot:
        """A snapshot of parts a diff built for it alone: taken as they are, not sorted or
        copied again as ``__init__`` does with what a caller passes."""
        snapshot = cls.__new__(cls)
        # a classmethod filling in an instance of its own class
        snapshot._active, snapshot._finished = active, finished  # noqa: SLF001
        snapshot._finished_counts, snapshot._tombstones = counts, tombstones  # noqa: SLF001
        snapshot._summary, snapshot.horizon_ms = None, horizon_ms  # noqa: SLF001
        return snapshot


def _count(counts: dict[Key, int], tracked: FinishedJob, delta: int) -> None:
    key = (tracked.queue, tracked.state)
    counts[key] = counts.get(key, 0) + delta
    if not counts[key]:
        del counts[key]


def _is_history(tracked: Job | TrackedJob, horizon: int | None) -> bool:
    return (
        horizon is not None
        and tracked.state.terminal
        and tracked.create_time is not None
        and tracked.create_time < horizon
    )


def _advance(prev: ActiveJob, job: Job, now_ms: int) -> tuple[TrackedJob, Transition]:
    old, new = prev.state, job.state
    # The API's update_time is when the state changed; without it the poll time is our best bound.
    at = (
        job.update_time
        if job.update_time is not None and job.update_time >= prev.since_ms
        else now_ms
    )
    recoveries = prev.recoveries + (1 if new is S.RECOVERING else 0)
    duration = job.duration_ms
    if duration is None and job.create_time is not None:
        duration = max(0, at - job.create_time)
    occurrence = recoveries if S.RECOVERING in (old, new) else 1
    transition = Transition(
        job=job,
        from_state=old,
        to_state=new,
        skipped=(old, new) not in DIRECT_EDGES,
        in_state_seconds=max(0, at - prev.since_ms) / 1000,
        duration_ms=duration,
        occurrence=max(occurrence, 1),
    )
    tracked = FinishedJob.of(job) if new.terminal else ActiveJob.of(job, at, recoveries)
    return tracked, transition
