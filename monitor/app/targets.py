"""What one process watches: the targets of the configuration, cut to this replica's shard.

A target is one project at one endpoint with its own credentials and API quota. Without
``[[targets]]`` the settings are the one target (the environment-variable shortcut). With them,
each table is validated whole as top-level values overlaid by the table's own; credentials are
inherited as a group, so a target that names any credential setting uses only its own and never
another account's keys. Settings that belong to the process (the metrics address, logging,
histogram buckets, sharding) are top-level only.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from monitor.app.config import ConfigError, Settings, given_settings
from monitor.app.sharding import Shard, parse_shard
from monitor.poll.poller import ALL_QUEUES

__all__ = ["PROCESS_SETTINGS", "Assignment", "assign", "expand"]

#: top-level only: one metrics server, one log stream, one registry, one shard per process
PROCESS_SETTINGS = frozenset(
    {"listen", "log_format", "log_level", "duration_buckets", "targets", "shard", "total_shards"}
)
CREDENTIALS = frozenset(
    {"auth", "ak", "sk", "security_token", "token", "token_file", "secrets_dir", "use_metadata"}
)


@dataclass(frozen=True, slots=True)
class Assignment:
    """One target and the queues of it this replica polls (``()``: the whole project)."""

    settings: Settings
    queues: tuple[str, ...]


def expand(settings: Settings) -> list[Settings]:
    """Every target as complete, validated settings; :class:`ConfigError` names
    ``targets[i].key`` on any problem."""
    if not settings.targets:
        return [settings]
    base = settings.model_dump(exclude=set(PROCESS_SETTINGS))
    expanded: list[Settings] = []
    seen: dict[tuple[str | None, str], int] = {}
    for i, table in enumerate(settings.targets):
        where = f"targets[{i}]"
        keys = {str(k).lower(): v for k, v in table.items()}
        for key in keys:
            if key not in Settings.model_fields:
                raise ConfigError(f"invalid configuration: {where}.{key}: is not a known setting")
            if key in PROCESS_SETTINGS:
                raise ConfigError(
                    f"invalid configuration: {where}.{key}: is set for the whole process, "
                    "not per target"
                )
        inherited = {
            k: v for k, v in base.items() if not (CREDENTIALS & keys.keys() and k in CREDENTIALS)
        }
        names = {field: f"{where}.{field}" for field in Settings.model_fields}
        try:
            target = given_settings(names, **_process(settings), **{**inherited, **keys})
        except ConfigError as exc:  # a rule of several settings names no key: name the target
            problem = str(exc).removeprefix("invalid configuration: ")
            if not problem.startswith(where):
                problem = f"{where}: {problem}"
            raise ConfigError(f"invalid configuration: {problem}") from None
        if target.project_id is None:
            raise ConfigError(f"invalid configuration: {where}.project_id: required")
        identity = (target.project_id, target.base_url)
        if identity in seen:
            raise ConfigError(
                f"invalid configuration: {where}: the same project and endpoint as "
                f"targets[{seen[identity]}]"
            )
        seen[identity] = i
        expanded.append(target)
    return _own_state_files(settings, expanded)


def _process(settings: Settings) -> dict[str, Any]:
    return {k: getattr(settings, k) for k in ("listen", "log_format", "log_level")}


def _own_state_files(settings: Settings, targets: list[Settings]) -> list[Settings]:
    """A top-level state file is a name pattern for several targets: ``state.json`` becomes
    ``state.<project_id>[.<region>].json``, so targets never share (and reject) one file."""
    if settings.state_file is None or len(targets) < 2:
        return targets
    shared = settings.state_file
    out = []
    for target in targets:
        if target.state_file != shared:
            out.append(target)  # the target named its own
            continue
        parts = [target.project_id or "", target.known_region]
        name = ".".join(p for p in parts if p)
        own = shared.with_name(f"{shared.stem}.{name}{shared.suffix}")
        out.append(target.model_copy(update={"state_file": own}))
    return out


def assign(
    settings: Settings, hostname: Callable[[], str] = socket.gethostname
) -> tuple[Shard, list[Assignment]]:
    """This replica's shard and the targets' queues it owns (targets with none are left out)."""
    try:
        shard = parse_shard(settings.shard, settings.total_shards, hostname())
    except ValueError as exc:
        raise ConfigError(f"invalid configuration: DLI_MONITOR_SHARD: {exc}") from None
    assignments = []
    for target in expand(settings):
        project = target.project_id or ""
        if target.queues:
            mine = tuple(q for q in target.queues if shard.owns(project, q))
            if mine:
                assignments.append(Assignment(target, mine))
        elif shard.owns(project, ALL_QUEUES):
            assignments.append(Assignment(target, ()))
    return shard, assignments
