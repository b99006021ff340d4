"""The ``dli-monitor`` command: ``run``, ``demo``, ``simulate`` and ``check``.

Exit status: 0 on success and on a graceful shutdown, 1 when a check fails or the daemon cannot
start (e.g. its port is taken), 2 for bad configuration or usage (one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import math
import os
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

import anyio

from monitor import __version__
from monitor.app import shutdown
from monitor.app.config import (
    ConfigError,
    Settings,
    given_settings,
    load_settings,
    unknown_variables,
)
from monitor.core.jobs import JobState
from monitor.output.redact import one_line
from monitor.simulator.api import ApiVariant
from monitor.simulator.app import Faults, Simulator, running_simulator
from monitor.simulator.world import Lifecycle, World

__all__ = ["main"]

DEMO_QUEUES = ("etl", "reporting", "adhoc")
DEMO_PROJECT = "demo0project0000000000000000000"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the flag, and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, _line(f"invalid usage: {message} (see {self.prog} --help)") + "\n")


def _line(message: str) -> str:
    """What the command says on stderr: one line, whatever the message echoes."""
    return f"dli-monitor: {one_line(message)}"


def _number(
    kind: Callable[[str], float], low: float, high: float = math.inf, *, open_low: bool = False
) -> Callable[[str], float]:
    """An argparse type: a finite number within [low, high] (or (low, high])."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not math.isfinite(value) or value < low or (open_low and value == low) or value > high:
            bounds = f"> {low:g}" if open_low else f">= {low:g}"
            bounds += f" and <= {high:g}" if high != math.inf else ""
            raise argparse.ArgumentTypeError(f"must be {bounds} (got {text!r})")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


_POSITIVE = _number(float, 0, open_low=True)
_SECONDS = _number(float, 0)
_SHARE = _number(float, 0, 1)
_COUNT = _number(int, 0)
_AT_LEAST_ONE = _number(int, 1)
_PORT = _number(int, 0, 65535)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="dli-monitor",
        description="Watch Huawei Cloud DLI Spark batch jobs: JSON events and Prometheus metrics.",
    )
    parser.add_argument("--version", action="version", version=f"dli-monitor {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="the daemon (configured by DLI_MONITOR_* variables)")
    run.add_argument("--config", type=Path, help="a TOML file of settings (env vars win)")

    check = sub.add_parser("check", help="validate the configuration and reach every queue once")
    check.add_argument("--config", type=Path, help="a TOML file of settings (env vars win)")

    demo = sub.add_parser("demo", help="the daemon against the built-in simulator, no set-up")
    demo.add_argument("--listen", default="0.0.0.0:10071", help="metrics address (host:port)")
    demo.add_argument("--log-format", choices=["json", "console", "auto"], default="auto")
    demo.add_argument("--interval", type=_POSITIVE, default=1.0, help="poll interval, seconds")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--duration", type=_POSITIVE, help="stop after this many seconds")

    sim = sub.add_parser("simulate", help="the fake DLI service alone")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=_PORT, default=8080)
    sim.add_argument("--project-id", default=DEMO_PROJECT)
    sim.add_argument("--queues", default=",".join(DEMO_QUEUES), help="comma-separated")
    sim.add_argument("--jobs", type=_COUNT, default=30, help="jobs present at start")
    sim.add_argument("--active", type=_COUNT, help="of which active (default: a fifth per state)")
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--history", type=_COUNT, default=1000, help="finished jobs kept per queue")
    sim.add_argument(
        "--speed", type=_POSITIVE, default=1.0, help="lifecycle time factor (<1: faster)"
    )
    sim.add_argument(
        "--arrival",
        type=_SECONDS,
        default=5.0,
        help="mean seconds between new jobs per queue (0: no new jobs)",
    )
    sim.add_argument("--ak", help="verify signatures made with this access key")
    sim.add_argument("--sk", help="… and this secret key")
    sim.add_argument("--throttle", type=_SHARE, default=0.0, help="share of requests answered 429")
    sim.add_argument(
        "--retry-after", type=_SECONDS, default=1.0, help="Retry-After of those, seconds"
    )
    sim.add_argument("--server-error", type=_SHARE, default=0.0, help="share answered 500")
    sim.add_argument("--malformed", type=_SHARE, default=0.0, help="share of list pages garbled")
    sim.add_argument("--timeout-rate", type=_SHARE, default=0.0, help="share that never answer")
    sim.add_argument("--latency", type=_SECONDS, default=0.0, help="seconds added to every answer")
    sim.add_argument(
        "--churn",
        type=_SHARE,
        default=0.0,
        help="share of list requests during which a job is inserted and an old one deleted",
    )
    api = sim.add_argument_group("API behaviour on the points the documentation leaves open")
    api.add_argument("--total", choices=["filtered", "project", "missing"], default="filtered")
    api.add_argument("--default-order", choices=["newest", "oldest"], default="newest")
    api.add_argument("--ignore-order", action="store_true")
    api.add_argument("--state-case", choices=["lower", "title", "upper"], default="lower")
    api.add_argument("--ignore-state-filter", action="store_true")
    api.add_argument("--ignore-time-filter", action="store_true", help="start/end ignored")
    api.add_argument("--ignore-queue-filter", action="store_true")
    api.add_argument("--server-error-status", type=int, choices=[400, 500], default=500)
    api.add_argument("--throttle-code", choices=["APIGW.0308", "APIG.0308"], default="APIGW.0308")
    api.add_argument("--no-retry-after", action="store_true", help="throttle without Retry-After")
    api.add_argument("--error-style", choices=["error_code", "code", "camel", "nested"])
    api.add_argument("--deleted-answer", choices=["DLI.0002", "404", "DLI.0001"])
    api.add_argument("--page-cap", type=_AT_LEAST_ONE, help="the server's own cap on size")
    api.add_argument(
        "--gateway-limit",
        type=_AT_LEAST_ONE,
        help="sliding-window limit: at most N requests per --gateway-window",
    )
    sim.add_argument(
        "--failure-mix",
        type=_failure_mix,
        help="why dead jobs died, as their logs say: reason=weight,... "
        "(reasons: oom, executor_lost, resource_unavailable, input_not_found, "
        "permission_denied, dependency_missing, sql_error, timeout, killed, app_error, unknown; "
        "default: all alike)",
    )
    api.add_argument(
        "--gateway-window",
        choices=["second", "minute"],
        default="second",
        help="the gateway limit's window (its 429 states the policy, as APIG's does)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:  # noqa: C901, PLR0911 (each failure's exit status, in one place)
    """Run ``dli-monitor`` with ``argv``; its exit status (see the module's docstring)."""
    args = _parser().parse_args(argv)
    from monitor.output.serving import ListenError

    if args.command in ("run", "check"):
        for warning in unknown_variables(os.environ):  # a typo is a warning, not a stop
            print(_line(f"warning: {warning}"), file=sys.stderr)
    try:
        if args.command == "run":
            return _run(load_settings(args.config))
        if args.command == "check":
            from monitor.app.check import check

            shutdown.release()  # a one-shot command: a signal ends it as by default
            return anyio.run(check, load_settings(args.config))
        if args.command == "demo":
            return anyio.run(_demo, args)
        if args.command == "simulate":
            return anyio.run(_simulate, args)
    except ConfigError as exc:
        print(_line(str(exc)), file=sys.stderr)
        return 2
    except ListenError as exc:  # the port is taken, or not ours to bind
        print(_line(str(exc)), file=sys.stderr)
        return 1
    except BrokenPipeError:
        return _stdout_closed()
    except ExceptionGroup as group:  # the same, raised in a task of the daemon's task groups
        if group.split(BrokenPipeError)[1] is None:
            return _stdout_closed()
        raise
    except KeyboardInterrupt:
        return 0
    return 2


def _stdout_closed() -> int:
    """Stdout (the event stream) was closed by its reader: `dli-monitor run | head -1`."""
    # Point it at /dev/null so the interpreter's last flush does not fail a second time.
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    print(_line("stdout was closed; no event can be written"), file=sys.stderr)
    return 1


def _require_project(settings: Settings) -> None:
    if settings.project_id is None and not settings.targets:
        raise ConfigError("invalid configuration: DLI_MONITOR_PROJECT_ID: required for run")


def _run(settings: Settings) -> int:
    _require_project(settings)
    from monitor.app.daemon import Daemon
    from monitor.output.events import configure_logging

    daemon = Daemon(settings)  # a bad target or shard is a ConfigError here, before any output
    configure_logging(settings.log_format, level=settings.log_level)
    anyio.run(daemon.run)
    return 0


def _failure_mix(text: str) -> tuple[tuple[str, int], ...]:
    from monitor.simulator.failures import parse_mix

    try:
        return parse_mix(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _world(  # noqa: PLR0913, PLR0917 (a World's knobs, as the command's flags give them)
    project_id: str,
    queues: Sequence[str],
    seed: int,
    jobs: int,
    lifecycle: Lifecycle,
    history: int = 1000,
    active: int | None = None,
) -> World:
    return World(
        project_id,
        queues,
        seed=seed,
        now_ms=int(time.time() * 1000),
        lifecycle=lifecycle,
        initial_jobs=jobs,
        history_limit=history,
        initial_active=active,
    )


async def _demo(args: argparse.Namespace) -> int:
    from monitor.app.daemon import Daemon
    from monitor.output.events import configure_logging

    # A fast lifecycle, so jobs visibly move within seconds of starting.
    lifecycle = Lifecycle(
        starting=(2.0, 6.0), running=(4.0, 20.0), recovering=(2.0, 5.0), arrival_interval=4.0
    )
    world = _world(DEMO_PROJECT, DEMO_QUEUES, args.seed, 30, lifecycle)
    # The demo signs its requests exactly as against real DLI; the simulator checks them.
    ak, sk = "DEMOACCESSKEY0000000", secrets.token_urlsafe(24)
    sim = Simulator(world, seed=args.seed, credentials=(ak, sk))
    # Its own flags and defaults only: run by `kubectl exec` beside a real daemon, the demo must
    # not pick up that daemon's DLI_MONITOR_* settings (its state file above all).
    flags = {"listen": "--listen", "poll_interval": "--interval", "log_format": "--log-format"}
    given = {"listen": args.listen, "poll_interval": args.interval, "log_format": args.log_format}
    given_settings(flags, auth="none", **given)  # a bad flag is reported before anything starts
    configure_logging(args.log_format)
    async with running_simulator(sim) as url:
        settings = given_settings(
            flags,
            project_id=DEMO_PROJECT,
            endpoint=url,
            queues=DEMO_QUEUES,
            auth="aksk",
            ak=ak,
            sk=sk,
            **given,
        )
        with anyio.move_on_after(args.duration or math.inf):
            await Daemon(settings).run()
    return 0


async def _simulate(args: argparse.Namespace) -> int:
    queues = [q.strip() for q in args.queues.split(",") if q.strip()]
    if not queues:
        raise ConfigError("invalid configuration: --queues: at least one queue is needed")
    lifecycle = Lifecycle(arrival_interval=args.arrival).scaled(args.speed)
    world = _world(
        args.project_id, queues, args.seed, args.jobs, lifecycle, args.history, args.active
    )
    faults = Faults(
        throttle=args.throttle,
        retry_after=args.retry_after,
        server_error=args.server_error,
        malformed=args.malformed,
        timeout=args.timeout_rate,
        latency=args.latency,
        churn=args.churn,
    )
    if (args.ak is None) != (args.sk is None):
        raise ConfigError("invalid configuration: --ak and --sk go together")
    credentials = (args.ak, args.sk) if args.ak is not None else None
    variant = ApiVariant(
        total=args.total,
        default_order=args.default_order,
        ignore_order=args.ignore_order,
        state_case=args.state_case,
        ignore_state_filter=args.ignore_state_filter,
        ignore_time_filter=args.ignore_time_filter,
        ignore_queue_filter=args.ignore_queue_filter,
        server_error_status=args.server_error_status,
        throttle_code=args.throttle_code,
        throttle_retry_after=not args.no_retry_after,
        error_style=args.error_style or "error_code",
        deleted_answer=args.deleted_answer or "DLI.0002",
        page_cap=args.page_cap,
    )
    if args.failure_mix is not None:
        world.failure_mix = args.failure_mix
    sim = Simulator(
        world,
        faults=faults,
        seed=args.seed,
        credentials=credentials,
        variant=variant,
        gateway_limit=args.gateway_limit,
        gateway_window=60 if args.gateway_window == "minute" else 1,
    )
    with anyio.open_signal_receiver(*shutdown.SIGNALS) as signals:
        async with running_simulator(sim, args.host, args.port) as url:
            counts = {s.value: sum(world.counts(q)[s] for q in queues) for s in JobState}
            print(f"simulating DLI project {args.project_id} at {url} (jobs: {counts})", flush=True)
            # As PID 1 in a container SIGTERM has no default action: stop on it explicitly (or
            # at once on one held while the process started).
            if shutdown.pending() is None:
                async for _ in signals:
                    break
    return 0
