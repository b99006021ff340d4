"""Which (project, queue) pairs one replica polls, when several share the work.

Replica ``index`` of ``total`` owns the pairs whose stable hash modulo ``total`` is ``index``,
as kube-state-metrics shards objects: no coordination, every pair owned by exactly one replica
whatever the order of the configuration, and the same split on every restart. ``auto`` takes
the index from a StatefulSet pod's hostname (``dli-monitor-2`` → 2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Shard", "owner", "parse_shard"]

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_ORDINAL = re.compile(r"-(\d+)$")


def owner(project_id: str, queue: str, total: int) -> int:
    """The shard of ``(project_id, queue)`` among ``total`` (FNV-1a, 64 bits: stable across
    processes and versions, unlike ``hash()``)."""
    digest = _FNV_OFFSET
    for byte in f"{project_id}\x1f{queue}".encode():
        digest = ((digest ^ byte) * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return digest % total


@dataclass(frozen=True, slots=True)
class Shard:
    """This replica's place: ``index`` of ``total`` (0-based)."""

    index: int = 0
    total: int = 1

    def owns(self, project_id: str, queue: str) -> bool:
        return self.total == 1 or owner(project_id, queue, self.total) == self.index


def parse_shard(setting: str | None, total: int, hostname: str) -> Shard:
    """``DLI_MONITOR_SHARD`` (a number, ``auto`` or unset) with ``DLI_MONITOR_TOTAL_SHARDS``.

    Raises ``ValueError`` with a readable reason."""
    if setting is None:
        return Shard(0, total)
    if setting == "auto":
        match = _ORDINAL.search(hostname)
        if match is None:
            raise ValueError(
                f"auto needs a hostname ending in -<ordinal> (a StatefulSet pod), not {hostname!r}"
            )
        index = int(match.group(1))
    elif setting.isdigit():
        index = int(setting)
    else:
        raise ValueError("must be a shard number from 0, or auto")
    if index >= total:
        raise ValueError(f"shard {index} does not exist among DLI_MONITOR_TOTAL_SHARDS={total}")
    return Shard(index, total)
