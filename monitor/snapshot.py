"""The snapshot of known jobs and the diff that turns a fresh listing into changes.

Pure: no I/O and no clock. The poller passes the poll time in and gets back a new snapshot and
the changes to publish; the old snapshot is never modified, so a pass that fails half-way is
simply dropped and nothing is half-applied.

Rules (DESIGN.md, "Semantics that must hold"):

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
from dataclasses import dataclass, field, replace

from monitor.dli.models import ACTIVE_STATES, Job, JobState

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
    "TrackedJob",
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
class TrackedJob:
    """A known job: its last record, since when (Unix ms) it has been in its state, and how many
    times it has entered ``recovering`` (which tells repeated recovery cycles apart)."""

    job: Job
    since_ms: int
    recoveries: int = 0
    #: since when (Unix ms) the job has been missing from the listings, unconfirmed
    missing_since_ms: int | None = None

    @property
    def state(self) -> JobState:
        return self.job.state


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


@dataclass(frozen=True, slots=True)
class StateSummary:
    """Per-(queue, state) job counts and, for active states, when the longest-waiting job entered
    the state (Unix ms). Computed once per diff so a scrape costs O(queues), not O(jobs)."""

    counts: Mapping[tuple[str, JobState], int]
    oldest_since_ms: Mapping[tuple[str, JobState], int]

    @classmethod
    def of(cls, jobs: Iterable[TrackedJob]) -> StateSummary:
        counts: dict[tuple[str, JobState], int] = {}
        oldest: dict[tuple[str, JobState], int] = {}
        for tracked in jobs:
            key = (tracked.job.queue, tracked.job.state)
            counts[key] = counts.get(key, 0) + 1
            if key[1] in ACTIVE_STATES:
                since = oldest.get(key)
                if since is None or tracked.since_ms < since:
                    oldest[key] = tracked.since_ms
        return cls(counts, oldest)

    def queues(self) -> set[str]:
        return {queue for queue, _ in self.counts}

    def with_counts(self, counts: Mapping[tuple[str, JobState], int]) -> StateSummary:
        """This summary with some counts replaced (terminal totals the API counted for us)."""
        if not counts:
            return self
        return StateSummary({**self.counts, **counts}, self.oldest_since_ms)


@dataclass(frozen=True, slots=True)
class Diff:
    """The result of :meth:`JobSnapshot.diff`: the snapshot to keep and the changes to publish."""

    snapshot: JobSnapshot
    changes: list[Change]


class JobSnapshot:
    """An immutable map of job id → :class:`TrackedJob`, tombstones of forgotten jobs, and a
    history horizon.

    The horizon (Unix ms, or ``None``) is set by polls that list only what can have changed:
    finished jobs created before it are history the monitor no longer lists. Met in a later full
    listing (after a restart, or a change of strategy), such a job is counted silently, never
    reported as discovered; forgotten, it needs no tombstone.
    """

    __slots__ = ("_jobs", "_summary", "_tombstones", "horizon_ms")

    def __init__(
        self,
        jobs: Mapping[str, TrackedJob] | None = None,
        tombstones: Mapping[str, int] | None = None,
        horizon_ms: int | None = None,
    ) -> None:
        self._jobs: dict[str, TrackedJob] = dict(jobs or {})
        self._tombstones: dict[str, int] = dict(tombstones or {})
        self._summary: StateSummary | None = None
        self.horizon_ms = horizon_ms

    def __len__(self) -> int:
        return len(self._jobs)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._jobs

    def __iter__(self) -> Iterator[TrackedJob]:
        return iter(self._jobs.values())

    def get(self, job_id: str) -> TrackedJob | None:
        return self._jobs.get(job_id)

    @property
    def tombstones(self) -> Mapping[str, int]:
        """Ids of forgotten terminal jobs → when (Unix ms) they were forgotten."""
        return self._tombstones

    @property
    def summary(self) -> StateSummary:
        if self._summary is None:
            self._summary = StateSummary.of(self._jobs.values())
        return self._summary

    def missing(self, listed: Mapping[str, Job]) -> list[TrackedJob]:
        """Active jobs absent from ``listed``: each needs a detail request before a verdict."""
        return [
            tracked
            for job_id, tracked in self._jobs.items()
            if tracked.job.state in ACTIVE_STATES and job_id not in listed
        ]

    @classmethod
    def baseline(
        cls, listed: Iterable[Job], *, now_ms: int, horizon_ms: int | None = None
    ) -> JobSnapshot:
        """The snapshot of a first poll: every job known, nothing reported."""
        return cls({job.id: _track(job, now_ms) for job in listed}, horizon_ms=horizon_ms)

    @staticmethod
    def _is_history(job: Job, horizon: int | None) -> bool:
        return (
            horizon is not None
            and job.state not in ACTIVE_STATES
            and job.create_time is not None
            and job.create_time < horizon
        )

    def diff(
        self, observation: Observation, *, now_ms: int, tombstone_ttl_ms: int = 3_600_000
    ) -> Diff:
        """Apply one poll's observation; return the next snapshot and the changes, in order."""
        jobs = dict(self._jobs)
        tombstones = {
            job_id: at for job_id, at in self._tombstones.items() if now_ms - at < tombstone_ttl_ms
        }
        changes: list[Change] = []
        seen = dict(observation.listed)
        seen.update(observation.confirmed)
        horizon = self.horizon_ms
        if observation.history_before_ms is not None:
            horizon = max(horizon or 0, observation.history_before_ms)

        for job_id, job in seen.items():
            if job_id in tombstones:
                # A finished job that paging churn hid from one listing: known, not new. Track
                # it again (silently) so that it is counted while the API lists it.
                del tombstones[job_id]
                jobs[job_id] = _track(job, now_ms)
                continue
            prev = jobs.get(job_id)
            if prev is None:
                jobs[job_id] = _track(job, now_ms)
                if not self._is_history(job, horizon):
                    changes.append(Discovered(job))
            elif prev.job.state is not job.state and is_forward(prev.job.state, job.state):
                tracked, transition = _advance(prev, job, now_ms)
                jobs[job_id] = tracked
                changes.append(transition)
            elif prev.missing_since_ms is not None:
                jobs[job_id] = replace(prev, missing_since_ms=None)

        for job_id, tracked in self._jobs.items():
            if job_id in seen:
                continue
            if job_id in observation.gone and tracked.job.state in ACTIVE_STATES:
                del jobs[job_id]
                changes.append(Vanished(tracked.job, tracked.job.state))
            elif tracked.job.state in ACTIVE_STATES:
                missing = tracked.missing_since_ms
                if missing is None:
                    jobs[job_id] = replace(tracked, missing_since_ms=now_ms)
                elif now_ms - missing >= UNCONFIRMED_TTL_MS:
                    del jobs[job_id]
                    changes.append(
                        Forgotten(tracked.job, tracked.job.state, (now_ms - missing) / 1000)
                    )
            elif observation.complete and tracked.job.state not in ACTIVE_STATES:
                del jobs[job_id]
                if not self._is_history(tracked.job, horizon):
                    tombstones[job_id] = now_ms
        return Diff(JobSnapshot(jobs, tombstones, horizon), changes)


def _track(job: Job, now_ms: int) -> TrackedJob:
    if job.update_time is not None:
        since = job.update_time
    elif job.state is S.STARTING and job.create_time is not None:
        since = job.create_time
    else:
        since = now_ms
    return TrackedJob(job, since, 1 if job.state is S.RECOVERING else 0)


def _advance(prev: TrackedJob, job: Job, now_ms: int) -> tuple[TrackedJob, Transition]:
    old, new = prev.job.state, job.state
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
    return TrackedJob(job, at, recoveries), transition
