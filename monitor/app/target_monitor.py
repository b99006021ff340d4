"""One target's monitor: its client (own rate limit and concurrency: a quota belongs to an
account), its pollers, events, metrics scope, API behaviour and state file.

Targets share nothing but the HTTP session's connection pool and the metrics registry, so one
target's failures (rejected keys, throttling, an outage in its region) never slow another's
polls.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aiohttp
import anyio
from anyio.abc import TaskStatus

from monitor import __version__
from monitor.app import heap
from monitor.app.config import Settings
from monitor.core.behaviour import ApiBehaviour, BehaviourBook
from monitor.core.resume import ResumeState
from monitor.core.snapshot import JobSnapshot
from monitor.dli.auth import Signer
from monitor.dli.client import ClientHooks, DLIClient, RetryPolicy
from monitor.dli.errors import APIError
from monitor.dli.ratelimit import Ceiling, parse_quota
from monitor.dli.transport import AiohttpTransport
from monitor.output.events import EventLog
from monitor.output.metrics import Metrics
from monitor.output.redact import redact_url
from monitor.output.scope import Scope
from monitor.poll.pacing import RECOUNT_SHARE
from monitor.poll.poller import ALL_QUEUES, PolledQueue, PollOutput, PollSettings, QueuePoller
from monitor.poll.shared import ProjectPass
from monitor.state.file import StateFile

__all__ = ["TargetMonitor"]


@dataclass(frozen=True, slots=True)
class _Saved:
    snapshots: dict[str, JobSnapshot]
    resume: dict[str, ResumeState]
    behaviour: ApiBehaviour


class TargetMonitor:
    """Polls ``queues`` of one target (``()``: the whole project) until cancelled."""

    def __init__(
        self,
        settings: Settings,
        queues: Sequence[str],
        metrics: Metrics,
        *,
        signer: Callable[[aiohttp.ClientSession], Signer],
        clock: Callable[[], float] = time.time,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        assert settings.project_id is not None
        self.settings = settings
        self.project_id = settings.project_id
        self.queues = tuple(queues)
        self.scope = Scope(self.project_id, settings.known_region)
        self.metrics = metrics.for_scope(self.scope)
        self.events = EventLog(
            self.project_id, on_event=self.metrics.event_written, region=self.scope.region
        )
        #: what the API is seen to do, shared by the target's pollers (one API behind them)
        self.behaviour = BehaviourBook(on_change=self.events.api_behaviour)
        self._signer = signer
        self._clock = clock
        self._on_change = on_change
        self.pollers: list[QueuePoller] = []
        # The file names its endpoint without credentials: it is output too.
        self._state = (
            StateFile(
                settings.state_file,
                project_id=self.project_id,
                endpoint=redact_url(settings.base_url),
            )
            if settings.state_file is not None
            else None
        )
        #: the windows every request of the target waits for (lowered by a gateway's policy)
        self.ceiling = Ceiling(settings.max_rps, settings.max_rpm)
        self._dirty: anyio.Event | None = None
        self._skew_reported = False
        #: the last save's error, so that a lasting failure is one line, not one per save
        self._save_error: str | None = None

    async def run(
        self,
        session: aiohttp.ClientSession,
        *,
        stop_reason: Callable[[], str],
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Start the pollers (started once they exist), run until cancelled, then say so and
        save exactly what was last published."""
        s = self.settings
        hooks = ClientHooks(
            on_response=self.metrics.api_response,
            on_malformed=self.metrics.malformed_response,
            on_clock_skew=self._clock_skew,
            on_throttled=self._throttled,
        )
        self._publish_ceiling()
        transport = AiohttpTransport(
            session,
            s.base_url,
            signer=self._signer(session),
            max_concurrency=s.max_concurrency,
            ceiling=self.ceiling,
            timeout=s.request_timeout,
        )
        client = DLIClient(
            transport,
            self.project_id,
            retry=RetryPolicy.for_interval(s.poll_interval),
            hooks=hooks,
        )
        loaded = self._state.load() if self._state is not None else None
        saved = loaded.snapshots if loaded is not None else {}
        resume = loaded.resume if loaded is not None else {}
        if loaded is not None and loaded.behaviour is not None:
            # What the last run learnt: verdicts are not relearnt, listings not sequential.
            self.behaviour.current = loaded.behaviour
        self._dirty = anyio.Event()
        polled = [PolledQueue(q) for q in self.queues] or [PolledQueue(None)]
        output = PollOutput(self.events, self.metrics, on_applied=self._applied)
        settings = PollSettings(
            s.poll_interval,
            page_size=s.page_size,
            strategy=s.poll_strategy,
            recount_interval=s.recount_interval,
            recount_rps=s.max_rps * RECOUNT_SHARE,
            clock=self._clock,
        )
        # Two queues or more: their incremental rounds may share one project-wide pass.
        shared = (
            ProjectPass(
                self.behaviour,
                page_size=s.page_size,
                interval=s.poll_interval,
                on_scope=self._scope_chosen,
            )
            if len(self.queues) > 1
            else None
        )
        self.pollers = [
            QueuePoller(
                queue,
                client,
                output,
                settings,
                snapshot=saved.get(queue.label),
                behaviour=self.behaviour,
                resume=resume.get(queue.label),
                shared=shared,
            )
            for queue in polled
        ]
        if shared is not None:
            shared.serve(self.pollers)
        summary = {**s.summary(), "queues": list(self.queues)}
        if loaded is not None:
            summary["state_file_status"] = loaded.status
        degraded = loaded is not None and not loaded.usable
        try:
            async with anyio.create_task_group() as tg:
                self.events.started(__version__, summary, degraded=degraded)
                if self._state is not None:
                    tg.start_soon(self._save_loop, self._state)
                for poller in self.pollers:
                    tg.start_soon(poller.run)
                task_status.started()
        finally:
            # Synchronous: runs even while the enclosing scope is being cancelled. The pollers
            # are stopped, so this saves exactly what was last published.
            self.events.stopping(__version__, stop_reason())
            if self._state is not None:
                self._save(self._state, self._saved())

    def _clock_skew(self, skew: float) -> None:
        if not self._skew_reported:  # once: the poll.failed events repeat the measured skew
            self._skew_reported = True
            self.events.clock_skew(skew)

    def _scope_chosen(self, scope: str, reason: str) -> None:
        self.events.strategy(ALL_QUEUES, scope, reason)

    def _throttled(self, error: APIError) -> None:
        quota = parse_quota(error.message)
        if quota is not None and self.ceiling.lower(quota):
            self._publish_ceiling()
            effective = ", ".join(str(q) for q in self.ceiling.quotas)
            self.events.request_ceiling(effective, str(quota), error.message)

    def _publish_ceiling(self) -> None:
        for quota in self.ceiling.quotas:
            self.metrics.request_ceiling(quota.seconds, quota.limit)

    def _applied(self, poller: QueuePoller) -> None:
        if poller.rows_listed >= heap.LARGE_LISTING:
            heap.trim()  # the listing's readings are garbage now: a pod's RSS should show it
        self._on_change()
        if self._dirty is not None:
            self._dirty.set()

    def _saved(self) -> _Saved:
        """What the state file keeps, as of the last applied polls (immutable values)."""
        pollers = [p for p in self.pollers if p.snapshot is not None]
        return _Saved(
            {p.polled.label: p.snapshot for p in pollers if p.snapshot is not None},
            {p.polled.label: p.resume_state for p in pollers},
            self.behaviour.current,
        )

    def _save(self, state: StateFile, saved: _Saved) -> None:
        """Write the state file; a failure is reported, not raised: the next save may succeed."""
        try:
            state.save(saved.snapshots, resume=saved.resume, behaviour=saved.behaviour)
        except OSError as exc:
            error = exc.strerror or str(exc)
            if error != self._save_error:
                self.events.state_save_failed(str(state.path), error)
            self._save_error = error
        else:
            if self._save_error is not None:
                self.events.state_save_recovered(str(state.path))
            self._save_error = None

    async def _save_loop(self, state: StateFile) -> None:
        """Save after polls are applied. Snapshots are immutable, so the encoding and writing
        happen in a worker thread while the pollers go on; saves are coalesced, never queued."""
        assert self._dirty is not None
        while True:
            await self._dirty.wait()
            self._dirty = anyio.Event()
            # Snapshots are taken here, on the event loop; only encoding and writing run in the
            # worker thread.
            await anyio.to_thread.run_sync(self._save, state, self._saved())
