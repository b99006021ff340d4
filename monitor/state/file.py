"""Saving and loading the state file: atomic replace, and setting aside what cannot be used.

A save writes a temporary file beside the target, fsyncs it, renames it over the target and
fsyncs the directory, so a crash at any instant leaves either the old or the new file, whole.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from monitor.core.behaviour import ApiBehaviour
from monitor.core.resume import ResumeState
from monitor.core.snapshot import JobSnapshot
from monitor.state import codec

__all__ = ["KEEP_REJECTED", "LoadResult", "StateFile"]

#: rejected state files kept for a human to look at; older ones are deleted
KEEP_REJECTED = 3


@dataclass(frozen=True, slots=True)
class LoadResult:
    """Snapshots by target label (empty if none), and what happened, for ``monitor.started``."""

    snapshots: dict[str, JobSnapshot]
    status: str
    #: False when a file was there but could not be used (rejected or unreadable)
    usable: bool = True
    #: each poller's counts and guesses, by label
    resume: dict[str, ResumeState] = field(default_factory=dict)
    #: what the API was seen to do, where the file kept it
    behaviour: ApiBehaviour | None = None


class StateFile:
    """The state file of one project at one endpoint."""

    def __init__(self, path: Path, *, project_id: str, endpoint: str) -> None:
        self.path = path
        self._project_id = project_id
        self._endpoint = endpoint

    def load(self) -> LoadResult:
        """Read the file. A missing file is a fresh start; an unusable one is renamed to
        ``<name>.rejected-<unix time>`` (kept for a human to look at) and also a fresh start."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return LoadResult({}, "absent")
        except OSError as exc:
            status = f"unreadable ({exc.strerror}); starting from a new baseline"
            return LoadResult({}, status, usable=False)
        try:
            saved = codec.decode_state(data, project_id=self._project_id, endpoint=self._endpoint)
        except codec.StateRejected as exc:
            aside = self.path.with_name(f"{self._aside_prefix}{int(time.time())}")
            try:
                self.path.rename(aside)
                self._prune_rejected()
            except OSError:
                aside = self.path
            return LoadResult({}, f"rejected ({exc}); set aside as {aside.name}", usable=False)
        jobs = sum(len(s) for s in saved.snapshots.values())
        return LoadResult(
            saved.snapshots, f"loaded {jobs} jobs", resume=saved.resume, behaviour=saved.behaviour
        )

    @property
    def _aside_prefix(self) -> str:
        """A rejected file is renamed to this and the unix time it was set aside."""
        return f"{self.path.name}.rejected-"

    def _prune_rejected(self) -> None:
        """Keep the newest :data:`KEEP_REJECTED` set-aside files: a daemon restarted in a loop
        over a bad file must not fill the volume."""
        prefix = self._aside_prefix
        # By the time in the name (when it was set aside; a rename keeps the old mtime).
        stamps = {
            p: int(p.name.removeprefix(prefix))
            for p in self.path.parent.iterdir()
            if p.name.startswith(prefix) and p.name.removeprefix(prefix).isdigit()
        }
        aside = sorted(stamps, key=stamps.__getitem__, reverse=True)
        for old in aside[KEEP_REJECTED:]:
            old.unlink(missing_ok=True)

    def save(
        self,
        snapshots: Mapping[str, JobSnapshot],
        *,
        resume: Mapping[str, ResumeState] | None = None,
        behaviour: ApiBehaviour | None = None,
    ) -> None:
        """Atomically replace the file with ``snapshots`` (and the pollers' resume states, and
        the API's behaviour). Raises ``OSError`` on failure."""
        data = codec.encode(
            snapshots,
            project_id=self._project_id,
            endpoint=self._endpoint,
            saved_at_ms=int(time.time() * 1000),
            resume=resume,
            behaviour=behaviour,
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            Path(tmp).replace(self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
