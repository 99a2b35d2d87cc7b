"""``common.aio.cancel_and_wait``: the task's cancellation swallowed, the caller's kept."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from common.aio import cancel_and_wait


async def _slow_to_stop(stopping: asyncio.Event) -> None:
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        stopping.set()
        await asyncio.sleep(0.2)  # a teardown that takes a while
        raise


async def test_the_tasks_own_cancellation_and_chosen_errors_are_swallowed() -> None:
    task = asyncio.create_task(asyncio.sleep(3600))
    await asyncio.sleep(0)
    await cancel_and_wait(task)
    assert task.cancelled()

    async def fails_on_cancel() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise OSError("socket gone") from None

    failing = asyncio.create_task(fails_on_cancel())
    await asyncio.sleep(0)
    await cancel_and_wait(failing, OSError)
    failing = asyncio.create_task(fails_on_cancel())
    await asyncio.sleep(0)
    with pytest.raises(OSError, match="socket gone"):  # not asked to ignore it
        await cancel_and_wait(failing)
    await cancel_and_wait(None)


async def test_the_callers_cancellation_while_it_waits_is_not_swallowed() -> None:
    after: list[str] = []

    async def stopper(use_helper: bool, stopping: asyncio.Event) -> None:
        inner = asyncio.create_task(_slow_to_stop(stopping))
        await asyncio.sleep(0)
        if use_helper:
            await cancel_and_wait(inner)
        else:
            inner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await inner
        after.append("carried on")

    for use_helper in (False, True):
        after.clear()
        stopping = asyncio.Event()
        outer = asyncio.create_task(stopper(use_helper, stopping))
        await stopping.wait()
        outer.cancel()  # the caller is stopped while it waits for the inner task
        with contextlib.suppress(asyncio.CancelledError):
            await outer
        # contextlib.suppress lost the stop and the caller went on; the helper did not
        assert outer.cancelled() is use_helper
        assert after == ([] if use_helper else ["carried on"])


async def test_within_times_out_and_keeps_a_cancellation_that_comes_with_the_result() -> None:
    from common.aio import within

    assert await within(asyncio.sleep(0, "done"), 1) == "done"
    with pytest.raises(TimeoutError):
        await within(asyncio.Event().wait(), 0.01)
    # Cancelled in the same turn the awaited future completes: the cancellation wins
    # (Python 3.11's wait_for returned the result here and the caller never stopped).
    result: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    waiting = asyncio.create_task(within(result, 30))
    await asyncio.sleep(0)
    result.set_result(1)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
