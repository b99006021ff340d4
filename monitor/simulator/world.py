"""The simulated DLI service's state: jobs, their lifecycles, and a ground-truth log.

Pure and seeded: time only moves when :meth:`World.advance` is called with a clock reading, and
every state change happens at a planned instant, so the ground truth (``World.history``) is exact
whatever the polling cadence. The HTTP layer (``app.py``) advances the world before answering.
"""

from __future__ import annotations

import heapq
import random
import uuid
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from monitor.core.jobs import ACTIVE_STATES, JobState
from monitor.simulator.failures import EMPTY_LOG, FAILURE_LOGS, pick_log

__all__ = ["Lifecycle", "SimJob", "TruthEntry", "World"]

S = JobState
#: state changes kept in the ground-truth log (tests use far fewer)
HISTORY_MAX = 1_000_000
_JOB_NAMES = (
    "daily-revenue-agg",
    "sessionize-clicks",
    "feature-build",
    "dedupe-orders",
    "train-ranker",
    "export-to-dws",
    "hourly-metrics",
    "compact-lake",
    "user-cohorts",
    "fraud-scores",
)


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """How long (seconds, uniform in [lo, hi]) jobs stay in each state, and how they end."""

    starting: tuple[float, float] = (3.0, 10.0)
    running: tuple[float, float] = (10.0, 60.0)
    recovering: tuple[float, float] = (3.0, 8.0)
    p_launch_failure: float = 0.05
    p_recovery: float = 0.15
    p_dead: float = 0.2
    #: mean seconds between two new jobs in one queue; 0 = no new jobs
    arrival_interval: float = 5.0

    def scaled(self, factor: float) -> Lifecycle:
        """The same lifecycle ``factor`` times faster or slower (for tests and the demo)."""

        def s(pair: tuple[float, float]) -> tuple[float, float]:
            return (pair[0] * factor, pair[1] * factor)

        return Lifecycle(
            s(self.starting),
            s(self.running),
            s(self.recovering),
            self.p_launch_failure,
            self.p_recovery,
            self.p_dead,
            self.arrival_interval * factor,
        )


@dataclass(frozen=True, slots=True)
class TruthEntry:
    """Job ``job_id`` entered ``state`` at ``at_ms``."""

    job_id: str
    queue: str
    state: JobState
    at_ms: int


@dataclass(slots=True)
class SimJob:
    """One simulated job: what its rows show, and its plan (the states still ahead of it)."""

    id: str
    name: str
    queue: str
    owner: str
    sc_type: str
    create_time: int
    update_time: int
    state: JobState
    plan: list[tuple[int, JobState]] = field(default_factory=list)
    app_id: str | None = None
    end_time: int | None = None
    #: the last log records its rows show (a dead job's say why it died)
    log: tuple[str, ...] = EMPTY_LOG

    def duration(self, now_ms: int) -> int:
        if self.state is S.STARTING:
            return 0
        return (self.end_time or now_ms) - self.create_time

    def row(self, now_ms: int) -> dict[str, object]:
        """The job as a list row (fields and types as in the seed page)."""
        return {
            "duration": self.duration(now_ms),
            "id": self.id,
            "state": self.state.value,
            "appId": self.app_id,
            "log": list(self.log),
            "sc_type": self.sc_type,
            "cluster_name": self.queue,
            "queue": self.queue,
            "create_time": self.create_time,
            "update_time": self.update_time,
            "name": self.name,
            "owner": self.owner,
            "proxyUser": self.owner,
            "kind": "",
            "image": "",
            "req_body": "",
        }

    def detail(self, now_ms: int) -> dict[str, object]:
        """The job as the detail endpoint shows it."""
        row = self.row(now_ms)
        del row["duration"]
        row.update(feature="basic", spark_version="2.4.5")
        return row


class World:
    """Every job of one simulated project, moving through realistic lifecycles."""

    def __init__(  # noqa: PLR0913 (a simulation's knobs, keyword-only but for the first two)
        self,
        project_id: str = "0123456789abcdef0123456789abcdef",
        queues: Sequence[str] = ("default",),
        *,
        seed: int = 0,
        now_ms: int,
        lifecycle: Lifecycle | None = None,
        initial_jobs: int = 30,
        initial_active: int | None = None,
        history_limit: int = 1000,
        min_retention_ms: int = 10_000,
    ) -> None:
        self.project_id = project_id
        self.queues = tuple(queues)
        #: which reasons its dead jobs' logs give, by weight (``--failure-mix``)
        self.failure_mix: tuple[tuple[str, int], ...] = tuple((r, 1) for r in FAILURE_LOGS)
        self.lifecycle = lifecycle or Lifecycle()
        self.history_limit = history_limit
        #: finished jobs are never deleted sooner than this after they finished
        self.min_retention_ms = min_retention_ms
        self.now_ms = now_ms
        self.jobs: dict[str, SimJob] = {}
        # The ground truth; bounded so that a simulator left running for days stays small.
        self.history: deque[TruthEntry] = deque(maxlen=HISTORY_MAX)
        # (instant, job id) of every job's next planned change; stale entries are skipped
        self._due: list[tuple[int, str]] = []
        # bumped on every change, so a query's sorted result can be reused until then
        self._version = 0
        self._cache: dict[tuple[object, ...], tuple[int, list[SimJob]]] = {}
        self._finished = False
        self._rng = random.Random(seed)
        self._serial = 0
        self._next_arrival = {q: now_ms + self._arrival_gap() for q in self.queues}
        self._seed_initial(initial_jobs, initial_active)

    # -- lifecycle -------------------------------------------------------------------------

    def _ms(self, span: tuple[float, float]) -> int:
        return max(1, int(self._rng.uniform(*span) * 1000))

    def _arrival_gap(self) -> int:
        mean = self.lifecycle.arrival_interval
        return int(self._rng.expovariate(1 / mean) * 1000) + 1 if mean > 0 else 2**62

    def _plan_from(self, state: JobState, at_ms: int) -> list[tuple[int, JobState]]:
        """The rest of a job's life after it entered ``state`` at ``at_ms``."""
        lc, rng = self.lifecycle, self._rng
        plan: list[tuple[int, JobState]] = []
        t = at_ms
        if state is S.STARTING:
            t += self._ms(lc.starting)
            if rng.random() < lc.p_launch_failure:
                return [(t, S.DEAD)]
            plan.append((t, S.RUNNING))
            state = S.RUNNING
        while state in ACTIVE_STATES:
            if state is S.RECOVERING:
                t += self._ms(lc.recovering)
                state = S.DEAD if rng.random() < lc.p_dead else S.RUNNING
            else:
                t += self._ms(lc.running)
                if rng.random() < lc.p_recovery:
                    state = S.RECOVERING
                else:
                    state = S.DEAD if rng.random() < lc.p_dead else S.SUCCESS
            plan.append((t, state))
            if len(plan) > 8:  # bound recovery loops
                plan.append((t + 1, S.DEAD))
                break
        return plan

    def submit(self, queue: str, *, at_ms: int | None = None, name: str | None = None) -> SimJob:
        """A new job enters ``starting`` now (or at ``at_ms``)."""
        at = self.now_ms if at_ms is None else at_ms
        self._serial += 1
        job = SimJob(
            id=str(uuid.UUID(int=self._rng.getrandbits(128), version=4)),
            name=name or f"{self._rng.choice(_JOB_NAMES)}-{self._serial:05d}",
            queue=queue,
            owner=self._rng.choice(("alice", "bob", "carol", "dataops")),
            sc_type=self._rng.choice(("A", "B", "C")),
            create_time=at,
            update_time=at,
            state=S.STARTING,
        )
        job.plan = self._plan_from(S.STARTING, at)
        self.jobs[job.id] = job
        self._schedule(job)
        self.history.append(TruthEntry(job.id, queue, S.STARTING, at))
        return job

    def _schedule(self, job: SimJob) -> None:
        self._version += 1
        if job.plan:
            heapq.heappush(self._due, (job.plan[0][0], job.id))

    def _seed_initial(self, count: int, active: int | None) -> None:
        """Jobs already there when the service starts: every state represented, or (``active``)
        that many active jobs and a finished history for the rest."""
        states = [S.SUCCESS, S.DEAD, S.RUNNING, S.STARTING, S.RECOVERING]
        # A queue's history grows at a bounded rate: at least two hours of it, at most one job
        # per 10 s per queue. (A million jobs created in two hours is no real queue, and would
        # make any window of time, such as the incremental strategy's, hold thousands.)
        span = max(7200.0, count / len(self.queues) * 10.0)
        for i in range(count):
            queue = self.queues[i % len(self.queues)]
            cycle = (i // len(self.queues)) % len(states)
            if active is not None:
                cycle = 2 + cycle % 3 if i < active else cycle % 2
            state = states[cycle]
            created = self.now_ms - self._ms((60.0, span))
            job = self.submit(queue, at_ms=created)
            job.plan = []
            if state is S.STARTING:
                job.create_time = job.update_time = (
                    self.now_ms - self._ms(self.lifecycle.starting) // 2
                )
                job.plan = self._plan_from(S.STARTING, job.create_time)
            else:
                job.app_id = f"application_{created}_{self._serial:04d}"
                job.state = state
                job.update_time = self.now_ms - self._ms((1.0, 50.0))
                if state.terminal:
                    job.end_time = job.update_time
                else:
                    job.plan = self._plan_from(state, self.now_ms)
            self._schedule(job)
            self.history[-1] = TruthEntry(job.id, queue, state, job.update_time)

    def advance(self, now_ms: int) -> None:
        """Apply every planned change and arrival up to ``now_ms``, in time order."""
        if now_ms <= self.now_ms:
            return
        for queue in self.queues:
            while self._next_arrival[queue] <= now_ms:
                at = self._next_arrival[queue]
                self.submit(queue, at_ms=at)
                self._next_arrival[queue] = at + self._arrival_gap()
        due: list[tuple[int, str, JobState]] = []
        while self._due and self._due[0][0] <= now_ms:
            at, job_id = heapq.heappop(self._due)
            job = self.jobs.get(job_id)
            if job is None or not job.plan or job.plan[0][0] != at:
                continue  # deleted, or re-planned since this entry was pushed
            while job.plan and job.plan[0][0] <= now_ms:
                when, state = job.plan.pop(0)
                due.append((when, job.id, state))
            if job.plan:
                heapq.heappush(self._due, (job.plan[0][0], job.id))
        due.sort()
        for at, job_id, state in due:
            self._enter(self.jobs[job_id], state, at)
        self.now_ms = now_ms
        if self._finished:
            self._finished = False
            self._age_out()

    def _enter(self, job: SimJob, state: JobState, at_ms: int) -> None:
        self._version += 1
        job.state = state
        job.update_time = at_ms
        if state is S.RUNNING and job.app_id is None:
            job.app_id = f"application_{job.create_time}_{self._serial:04d}"
        if state.terminal:
            job.end_time = at_ms
            job.plan.clear()
            self._finished = True
        if state is S.DEAD:
            job.log = pick_log(job.id, self.failure_mix)
        self.history.append(TruthEntry(job.id, job.queue, state, at_ms))

    def _expired(self, queue: str) -> list[SimJob]:
        """The queue's finished jobs old enough to be deleted, the longest-finished first."""
        cutoff = self.now_ms - self.min_retention_ms
        done = [
            j
            for j in self.jobs.values()
            if j.queue == queue and j.state.terminal and (j.end_time or 0) <= cutoff
        ]
        done.sort(key=lambda j: (j.end_time or 0, j.id))
        return done

    def _age_out(self) -> None:
        """Keep at most ``history_limit`` finished jobs per queue, as the real history does."""
        for queue in self.queues:
            finished = sum(1 for j in self.jobs.values() if j.queue == queue and j.state.terminal)
            excess = finished - self.history_limit
            if excess > 0:
                for job in self._expired(queue)[:excess]:
                    del self.jobs[job.id]
                self._version += 1

    # -- changes from outside (tests, fault injection) ---------------------------------------

    def set_state(self, job_id: str, state: JobState) -> None:
        """Move a job to ``state`` now; its later plan follows from there."""
        job = self.jobs[job_id]
        self._enter(job, state, self.now_ms)
        job.plan = [] if state.terminal else self._plan_from(state, self.now_ms)
        self._schedule(job)

    def churn(self, queue: str) -> None:
        """Rows move right now, as they do while a client pages: the longest-finished job is
        deleted (if one is past the retention floor) and the queue's next arrival comes at once.

        The arrival is brought forward, not added: the one after it keeps its own gap from the
        original instant, and an arrival more than one mean gap away is not pulled in. So churn
        moves rows as often as jobs arrive, and the world stays the size its lifecycle makes it
        (a fault that grew it would make late polls slower and slower, with nothing real behind).
        """
        if queue not in self.queues:
            return
        expired = self._expired(queue)
        if expired:
            del self.jobs[expired[0].id]
            self._version += 1
        due = self._next_arrival[queue]
        if due - self.now_ms <= self.lifecycle.arrival_interval * 1000:
            self.submit(queue)  # bumps the version
            self._next_arrival[queue] = max(due, self.now_ms) + self._arrival_gap()

    def delete(self, job_id: str) -> SimJob | None:
        """Remove a job entirely (as a deleted job disappears from the API)."""
        self._version += 1
        return self.jobs.pop(job_id, None)

    # -- queries ------------------------------------------------------------------------------

    def select(  # noqa: PLR0913 (the list endpoint's filters, each keyword-only)
        self,
        *,
        queue: str | None = None,
        state: JobState | None = None,
        job_id: str | None = None,
        job_name: str | None = None,
        owner: str | None = None,
        start: int | None = None,
        end: int | None = None,
        order: str = "CREATE_TIME_DESC",
    ) -> list[SimJob]:
        """Jobs matching every given filter, in ``order`` (don't modify the returned list)."""
        key: tuple[object, ...] = (queue, state, job_id, job_name, owner, start, end, order)
        if order.startswith("DURATION"):
            key += (self.now_ms,)  # running jobs' durations grow with time
        cached = self._cache.get(key)
        if cached is not None and cached[0] == self._version:
            return cached[1]
        if len(self._cache) > 256:
            self._cache.clear()
        found: Iterable[SimJob] = self.jobs.values()
        found = [
            j
            for j in found
            if (queue is None or j.queue == queue)
            and (state is None or j.state is state)
            and (job_id is None or j.id == job_id)
            and (job_name is None or job_name in j.name)
            and (owner is None or j.owner == owner)
            and (start is None or j.create_time >= start)
            and (end is None or j.create_time <= end)
        ]
        sort_key, reverse = {
            "CREATE_TIME_DESC": (lambda j: (j.create_time, j.id), True),
            "CREATE_TIME_ASC": (lambda j: (j.create_time, j.id), False),
            "DURATION_DESC": (lambda j: (j.duration(self.now_ms), j.id), True),
            "DURATION_ASC": (lambda j: (j.duration(self.now_ms), j.id), False),
        }[order]
        found.sort(key=sort_key, reverse=reverse)
        self._cache[key] = (self._version, found)
        return found

    def counts(self, queue: str) -> dict[JobState, int]:
        """The true number of jobs per state in ``queue`` now."""
        result = dict.fromkeys(JobState, 0)
        for job in self.jobs.values():
            if job.queue == queue:
                result[job.state] += 1
        return result
