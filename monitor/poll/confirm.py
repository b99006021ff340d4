"""Detail requests for active jobs missing from a listing: whether each changed, or is gone.

A job whose request fails stays unconfirmed (unchanged in the snapshot) until a later poll; it is
reported gone only on the code table's "does not exist" (:func:`~monitor.dli.errors.is_gone`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import anyio

from monitor.core.jobs import Job
from monitor.core.tracked import ActiveJob
from monitor.dli.errors import DLIError, UnknownJobState, is_gone
from monitor.dli.source import JobSource

__all__ = ["Confirmed", "confirm"]


@dataclass(slots=True)
class Confirmed:
    """The answers: fresh readings, the ids that no longer exist, and the states a detail gave
    that no known state matches (each with its request id)."""

    jobs: dict[str, Job] = field(default_factory=dict)
    gone: frozenset[str] = frozenset()
    unknown_states: list[tuple[str, str | None]] = field(default_factory=list)


async def confirm(source: JobSource, missing: Iterable[ActiveJob]) -> Confirmed:
    """Ask for the detail of every job of ``missing``, concurrently."""
    result = Confirmed()
    gone: set[str] = set()

    async def one(tracked: ActiveJob) -> None:
        try:
            job = await source.get_job(tracked.id, queue=tracked.queue)
        except UnknownJobState as exc:
            result.unknown_states.append((exc.state, exc.request_id))
            return
        except DLIError as exc:
            if is_gone(exc):
                gone.add(tracked.id)
            return  # anything else leaves the job unconfirmed until a later poll
        result.jobs[job.id] = job

    missing = list(missing)
    if missing:
        async with anyio.create_task_group() as tg:
            for tracked in missing:
                tg.start_soon(one, tracked)
    result.gone = frozenset(gone)
    return result
