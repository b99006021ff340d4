"""Assembly and lifetime of the daemon: settings in, pollers + metrics server running.

Structured concurrency throughout: the pollers and the signal watcher are tasks of one task
group; shutdown is cancelling that group, after which the state is flushed and the metrics
server's runner cleaned up.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Sequence

import aiohttp
import anyio
from anyio.abc import TaskStatus

from monitor import __version__
from monitor.behaviour import BehaviourBook
from monitor.config import Settings
from monitor.dli.auth import AkSkSigner, NoAuth, Signer, TokenAuth
from monitor.dli.client import ClientHooks, DLIClient, RetryPolicy
from monitor.dli.credentials import (
    CredentialSource,
    Keys,
    MetadataKeys,
    SecretsDirKeys,
    StaticKeys,
    StaticToken,
    TokenFile,
)
from monitor.events import EventLog
from monitor.metrics import Metrics, Scope
from monitor.poller import QueuePoller, Target
from monitor.redact import redact_url
from monitor.server import Health, make_app, serve
from monitor.snapshot import JobSnapshot
from monitor.statefile import StateFile

__all__ = ["Daemon", "build_signer"]


def build_signer(settings: Settings, session: aiohttp.ClientSession) -> Signer:
    """The request signer ``DLI_MONITOR_AUTH`` and the credential settings ask for."""
    project = settings.project_id
    source = settings.credential_source
    if settings.auth == "token":
        if source == "token_file":
            assert settings.token_file is not None
            return TokenAuth(TokenFile(settings.token_file), project_id=project)
        assert settings.token is not None
        return TokenAuth(StaticToken(settings.token), project_id=project)
    if settings.auth == "none":
        return NoAuth()
    keys: CredentialSource
    if source == "secrets_dir":
        assert settings.secrets_dir is not None
        keys = SecretsDirKeys(settings.secrets_dir)
    elif source == "metadata":
        keys = MetadataKeys(session, settings.metadata_url)
    else:
        assert settings.ak is not None and settings.sk is not None
        keys = StaticKeys(
            Keys(settings.ak.get_secret_value(), settings.sk, settings.security_token)
        )
    return AkSkSigner(keys, project_id=project)


class Daemon:
    """The monitor for one project: a poller per configured queue (or one for the project)."""

    def __init__(
        self,
        settings: Settings,
        *,
        signer: Callable[[aiohttp.ClientSession], Signer] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if settings.project_id is None:
            raise ValueError("project_id is required")
        self.settings = settings
        self.project_id = settings.project_id
        self.metrics = Metrics(__version__, settings.duration_buckets)
        self.scope = Scope(self.project_id, settings.known_region)
        self._target_metrics = self.metrics.for_scope(self.scope)
        self.events = EventLog(self.project_id, on_event=self._target_metrics.event_written)
        #: what the API is seen to do, shared by every queue's poller (one API behind them)
        self.behaviour = BehaviourBook(on_change=self.events.api_behaviour)
        self._signer = signer or (lambda session: build_signer(settings, session))
        self._clock = clock
        self.pollers: list[QueuePoller] = []
        self.addresses: list[str] = []
        self._scope: anyio.CancelScope | None = None
        self._state = (
            # The file names its endpoint without credentials: it is output too.
            StateFile(
                settings.state_file,
                project_id=self.project_id,
                endpoint=redact_url(settings.base_url),
            )
            if settings.state_file is not None
            else None
        )
        self._dirty: anyio.Event | None = None
        self._stop_reason: str | None = None
        self._skew_reported = False
        #: the last save's error, so that a lasting failure is one line, not one per save
        self._save_error: str | None = None

    def _targets(self) -> Sequence[Target]:
        return [Target(q) for q in self.settings.queues] or [Target(None)]

    def live(self) -> tuple[bool, str]:
        """Live unless a poll loop has made no progress for well over a poll's worth of time."""
        now = anyio.current_time()
        for poller in self.pollers:
            limit = poller.poll_timeout + 2 * poller.interval + 30
            if poller.heartbeat and now - poller.heartbeat > limit:
                return (
                    False,
                    f"poll loop of {poller.target.label} stalled {now - poller.heartbeat:.0f} s",
                )
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        waiting = [p.target.label for p in self.pollers if not p.ready]
        if waiting or not self.pollers:
            return False, "not yet polled: " + ", ".join(waiting)
        return True, "ok"

    def stop(self) -> None:
        """Ask a running daemon to shut down (what SIGTERM does)."""
        if self._scope is not None:
            self._scope.cancel()

    async def run(
        self,
        *,
        handle_signals: bool = True,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run until cancelled, :meth:`stop` or SIGTERM/SIGINT."""
        s = self.settings
        hooks = ClientHooks(
            on_response=self._target_metrics.api_response,
            on_malformed=self._target_metrics.malformed_response,
            on_clock_skew=self._clock_skew,
        )
        connector = aiohttp.TCPConnector(limit=max(2 * s.max_concurrency, 8))
        async with aiohttp.ClientSession(
            connector=connector, headers={"User-Agent": f"dli-monitor/{__version__}"}
        ) as session:
            client = DLIClient(
                session,
                s.base_url,
                self.project_id,
                signer=self._signer(session),
                max_concurrency=s.max_concurrency,
                max_rps=s.max_rps,
                timeout=s.request_timeout,
                retry=RetryPolicy.for_interval(s.poll_interval),
                hooks=hooks,
            )
            loaded = self._state.load() if self._state is not None else None
            saved = loaded.snapshots if loaded is not None else {}
            self._dirty = anyio.Event()
            self.pollers = [
                QueuePoller(
                    target,
                    client,
                    self.events,
                    self._target_metrics,
                    interval=s.poll_interval,
                    page_size=s.page_size,
                    snapshot=saved.get(target.label),
                    strategy=s.poll_strategy,
                    behaviour=self.behaviour,
                    on_applied=self._applied,
                    clock=self._clock,
                )
                for target in self._targets()
            ]
            self.metrics.add_views(lambda: self.pollers)
            self.metrics.add_behaviour(lambda: [(self.scope, self.behaviour.current)])
            host, port = s.listen_address
            app = make_app(self.metrics.registry, Health(self.live, self.ready))
            async with serve(app, host, port) as self.addresses:
                state_status = {"state_file_status": loaded.status} if loaded else {}
                degraded = loaded is not None and not loaded.usable
                try:
                    with anyio.CancelScope() as self._scope:
                        async with anyio.create_task_group() as tg:
                            if handle_signals:
                                # Before monitor.started: a SIGTERM as soon as that line is
                                # seen must be a graceful stop, not the default kill.
                                await tg.start(self._watch_signals, tg.cancel_scope)
                            self.events.started(
                                __version__, {**s.summary(), **state_status}, degraded=degraded
                            )
                            if self._state is not None:
                                tg.start_soon(self._save_loop)
                            for poller in self.pollers:
                                tg.start_soon(poller.run)
                            task_status.started()
                finally:
                    # Synchronous: runs even while the enclosing scope is being cancelled. The
                    # pollers are stopped, so this saves exactly what was last published.
                    self.events.stopping(__version__, self._stop_reason or "cancelled")
                    if self._state is not None:
                        self._save(self._state, self._snapshots())

    def _clock_skew(self, skew: float) -> None:
        if not self._skew_reported:  # once: the poll.failed events repeat the measured skew
            self._skew_reported = True
            self.events.clock_skew(skew)

    def _applied(self, poller: QueuePoller) -> None:
        if self._dirty is not None:
            self._dirty.set()

    def _snapshots(self) -> dict[str, JobSnapshot]:
        return {p.target.label: p.snapshot for p in self.pollers if p.snapshot is not None}

    def _save(self, state: StateFile, snapshots: dict[str, JobSnapshot]) -> None:
        """Write the state file; a failure is reported, not raised: the next save may succeed."""
        try:
            state.save(snapshots)
        except OSError as exc:
            error = exc.strerror or str(exc)
            if error != self._save_error:
                self.events.state_save_failed(str(state.path), error)
            self._save_error = error
        else:
            if self._save_error is not None:
                self.events.state_save_recovered(str(state.path))
            self._save_error = None

    async def _save_loop(self) -> None:
        """Save after polls are applied. Snapshots are immutable, so the encoding and writing
        happen in a worker thread while the pollers go on; saves are coalesced, never queued."""
        assert self._state is not None and self._dirty is not None
        state = self._state
        while True:
            await self._dirty.wait()
            self._dirty = anyio.Event()
            # Snapshots are taken here, on the event loop; only encoding and writing run in the
            # worker thread.
            await anyio.to_thread.run_sync(self._save, state, self._snapshots())

    async def _watch_signals(
        self, scope: anyio.CancelScope, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            task_status.started()
            async for signum in signals:
                self._stop_reason = signal.Signals(signum).name
                scope.cancel()
                return
