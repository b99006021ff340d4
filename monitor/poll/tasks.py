"""Running a few calls concurrently and failing like one call would."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

import anyio

__all__ = ["run_all"]


async def run_all(calls: Iterable[Callable[[], Awaitable[None]]]) -> None:
    """Run ``calls`` concurrently in one task group. The first to raise cancels the others and
    its exception is re-raised as is, not wrapped in an ``ExceptionGroup``, so callers keep
    catching the typed errors they expect."""
    failures: list[Exception] = []

    async def guarded(call: Callable[[], Awaitable[None]], scope: anyio.CancelScope) -> None:
        try:
            await call()
        except Exception as exc:  # noqa: BLE001 (re-raised as it is, after the others stop)
            failures.append(exc)
            scope.cancel()

    async with anyio.create_task_group() as tg:
        for call in calls:
            tg.start_soon(guarded, call, tg.cancel_scope)
    if failures:
        raise failures[0]
