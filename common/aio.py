"""Stopping a task without swallowing one's own cancellation.

``with contextlib.suppress(asyncio.CancelledError): await task`` after ``task.cancel()``
hides the cancelled task's ``CancelledError``, as meant, but also the caller's own: when
whoever stops the caller cancels it while it waits for the task, the caller carries on as
if nothing happened, and its stop takes as long as the rest of its teardown, or forever.
``cancel_and_wait`` tells the two apart by ``Task.cancelling()``. A teardown that must
finish even so (close a peer connection, release a device) puts the rest of its work in a
``finally`` after it: the work is done, then the stop goes on.

``within(aw, limit_s)`` is ``asyncio.wait_for`` without its Python 3.11 defect: when the
caller is cancelled just as the awaited thing completes, ``wait_for`` returns the result
and the cancellation is lost (python/cpython#86296, fixed in 3.12), so a loop around it
never stops; a call's Janus watch did exactly that, and its teardown hung. ``within`` runs
the awaitable in the caller's task under ``asyncio.timeout``, which keeps both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

__all__ = ["cancel_and_wait", "within"]

T = TypeVar("T")


async def within(aw: Awaitable[T], limit_s: float | None) -> T:
    """``await aw``, or ``TimeoutError`` after ``limit_s`` seconds (None: no limit)."""
    async with asyncio.timeout(limit_s):
        return await aw


async def cancel_and_wait(task: asyncio.Future[Any] | None, *ignore: type[Exception]) -> None:
    """Cancel ``task`` (None: nothing) and wait until it has ended. Its cancellation, and an
    exception of the ``ignore`` types it ends with, are swallowed; the caller's own
    cancellation, arriving while it waits, propagates."""
    if task is None:
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
    except ignore:
        pass
