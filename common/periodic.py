"""One periodic-task loop with one error policy (after Home Assistant's update coordinator).

``run_every(beat, interval_s, name=...)`` awaits ``beat()`` every ``interval_s`` seconds,
or sooner when ``wake`` is set (the event is cleared each time it wakes the loop). The
policy, the same for every loop in cuntong:

- a beat that raises is logged with its exception (``"<name> failed"``), handed to
  ``on_error`` (a counter, say) and the loop goes on, after ``backoff_s`` more if given:
  one bad beat (a database restarting, a store refusing a write) must not end the loop for
  good;
- cancellation stops it: ``CancelledError`` is never caught here, so cancelling the task
  that runs the loop ends it at its current await.

Inside a leader's term (``common.lease``) a beat is skipped once the term has lapsed, so a
paused old leader that wakes after losing its lease does not act before it is stopped. A
beat whose fenced write was refused (``LeaseLost``: the lease changed hands while it ran) is
logged as ``"<name> refused: ..."``, a warning without a traceback.

``first_wait`` waits one interval (or for ``wake``) before the first beat. ``sleep`` is the
clock seam: tests pass a fake that records the pauses instead of waiting them out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from common import lease
from common.aio import cancel_and_wait
from common.errors import LeaseLost

log = logging.getLogger("cuntong.periodic")

Sleep = Callable[[float], Awaitable[object]]


async def _pause(interval_s: float | None, wake: asyncio.Event | None, sleep: Sleep) -> None:
    """Until ``interval_s`` has passed or ``wake`` is set, whichever comes first."""
    if wake is None:
        if interval_s is None:
            raise ValueError("a loop without an interval needs a wake event")
        await sleep(interval_s)
        return
    waiting: list[asyncio.Future[object]] = [asyncio.ensure_future(wake.wait())]
    if interval_s is not None:
        waiting.append(asyncio.ensure_future(sleep(interval_s)))
    try:
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waiting:
            task.cancel()
        for task in waiting:
            await cancel_and_wait(task)
    wake.clear()


async def run_every(
    beat: Callable[[], Awaitable[object]],
    interval_s: float | None,
    *,
    name: str,
    wake: asyncio.Event | None = None,
    first_wait: bool = False,
    on_error: Callable[[Exception], object] | None = None,
    backoff_s: float = 0.0,
    sleep: Sleep = asyncio.sleep,
    logger: logging.Logger | None = None,
) -> None:
    """Run ``beat`` forever on the policy above; returns only by cancellation.

    ``interval_s`` None: beat only when ``wake`` is set."""
    if interval_s is not None and interval_s <= 0:
        raise ValueError(f"{name}: the interval must be positive, not {interval_s}")
    logger = logger or log
    if first_wait:
        await _pause(interval_s, wake, sleep)
    while True:
        try:
            if lease.acting(time.monotonic()):
                await beat()
        except LeaseLost as err:  # fenced out: another replica leads; the term is ending
            logger.warning("%s refused: %s", name, err)
        except Exception as err:  # the policy: log, count, go on (cancellation is not caught)
            logger.exception("%s failed", name)
            if on_error is not None:
                on_error(err)
            if backoff_s > 0:
                await sleep(backoff_s)
        await _pause(interval_s, wake, sleep)
