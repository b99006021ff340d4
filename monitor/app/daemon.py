"""Assembly and lifetime of the daemon: settings in, one monitor per target, the metrics server.

Structured concurrency throughout: the targets' pollers and the signal watcher are tasks of one
task group; shutdown is cancelling that group, after which every target flushes its state and
the metrics server's runner is cleaned up.
"""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Callable
from functools import partial

import aiohttp
import anyio
from anyio.abc import TaskStatus

from monitor import __version__
from monitor.app import shutdown
from monitor.app.config import Settings
from monitor.app.server import Health, make_app
from monitor.app.target_monitor import TargetMonitor
from monitor.app.targets import assign
from monitor.dli.auth import AkSkSigner, NoAuth, Signer, TokenAuth
from monitor.dli.credentials import (
    CredentialSource,
    Keys,
    MetadataKeys,
    SecretsDirKeys,
    StaticKeys,
    StaticToken,
    TokenFile,
)
from monitor.output.exposition import Exposition
from monitor.output.metrics import Metrics
from monitor.output.serving import serve
from monitor.poll.poller import QueuePoller

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
        assert settings.ak is not None
        assert settings.sk is not None
        keys = StaticKeys(
            Keys(settings.ak.get_secret_value(), settings.sk, settings.security_token)
        )
    return AkSkSigner(keys, project_id=project)


class Daemon:
    """The monitor of every target this replica owns: a poller per queue (or one per project)."""

    def __init__(
        self,
        settings: Settings,
        *,
        signer: Callable[[Settings, aiohttp.ClientSession], Signer] | None = None,
        clock: Callable[[], float] = time.time,
        hostname: Callable[[], str] = socket.gethostname,
    ) -> None:
        if settings.project_id is None and not settings.targets:
            raise ValueError("project_id is required")
        self.settings = settings
        self.shard, assignments = assign(settings, hostname)
        self.metrics = Metrics(__version__, settings.duration_buckets)
        intervals = [a.settings.poll_interval for a in assignments] or [settings.poll_interval]
        #: /metrics rendered once per applied poll, and at least once per shortest interval
        self.exposition = Exposition(self.metrics, max_age=min(intervals))
        make_signer = signer or build_signer
        self.targets = [
            TargetMonitor(
                a.settings,
                a.queues,
                self.metrics,
                signer=partial(make_signer, a.settings),
                clock=clock,
                on_change=self.exposition.changed,
            )
            for a in assignments
        ]
        self.addresses: list[str] = []
        self._scope: anyio.CancelScope | None = None
        self._stop_reason: str | None = None

    @property
    def pollers(self) -> list[QueuePoller]:
        return [p for t in self.targets for p in t.pollers]

    def live(self) -> tuple[bool, str]:
        """Live unless a poll loop has made no progress for well over a poll's worth of time."""
        now = anyio.current_time()
        for poller in self.pollers:
            limit = poller.poll_timeout + 2 * poller.interval + 30
            if poller.heartbeat and now - poller.heartbeat > limit:
                return (
                    False,
                    f"poll loop of {poller.polled.label} stalled {now - poller.heartbeat:.0f} s",
                )
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        waiting = [
            f"{t.project_id}/{p.polled.label}"
            for t in self.targets
            for p in t.pollers
            if not p.ready
        ]
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
        connections = sum(max(2 * t.settings.max_concurrency, 8) for t in self.targets)
        connector = aiohttp.TCPConnector(limit=max(connections, 8))
        async with aiohttp.ClientSession(
            connector=connector, headers={"User-Agent": f"dli-monitor/{__version__}"}
        ) as session:
            self.metrics.add_views(lambda: self.pollers)
            self.metrics.add_behaviour(
                lambda: [(t.scope, t.behaviour.current) for t in self.targets]
            )
            host, port = self.settings.listen_address
            app = make_app(self.exposition, Health(self.live, self.ready))
            async with serve(app, host, port) as self.addresses:
                with anyio.CancelScope() as self._scope:
                    async with anyio.create_task_group() as tg:
                        if handle_signals:
                            # Before monitor.started: a SIGTERM as soon as that line is seen
                            # must be a graceful stop, not the default kill.
                            await tg.start(self._watch_signals, tg.cancel_scope)
                        stop_reason = self._reason
                        for target in self.targets:
                            await tg.start(partial(target.run, session, stop_reason=stop_reason))
                        task_status.started()

    def _reason(self) -> str:
        return self._stop_reason or "cancelled"

    async def _watch_signals(
        self, scope: anyio.CancelScope, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        with anyio.open_signal_receiver(*shutdown.SIGNALS) as signals:
            task_status.started()
            # One that arrived while the process was starting was held for this receiver.
            held = shutdown.pending()
            if held is None:
                async for signum in signals:
                    held = signal.Signals(signum)
                    break
            self._stop_reason = held.name if held is not None else None
            scope.cancel()
