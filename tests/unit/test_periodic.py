"""The periodic-task helper: a failing beat does not stop it, cancelling does."""

from __future__ import annotations

import asyncio
import logging

import pytest

from common.periodic import run_every


class Clock:
    """A fake sleep: records each pause and yields once instead of waiting."""

    def __init__(self) -> None:
        self.pauses: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        await asyncio.sleep(0)


async def test_a_failing_beat_is_logged_counted_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, beats, errors = Clock(), list[int](), list[Exception]()
    done = asyncio.Event()

    async def beat() -> None:
        beats.append(len(beats))
        if len(beats) == 2:
            raise RuntimeError("store restarting")
        if len(beats) == 4:
            done.set()

    task = asyncio.create_task(
        run_every(beat, 5.0, name="flush", on_error=errors.append, backoff_s=1.0, sleep=clock.sleep)
    )
    await asyncio.wait_for(done.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert beats[:4] == [0, 1, 2, 3]  # went on after the failure (it may have run on since)
    assert [str(e) for e in errors] == ["store restarting"]
    # beat, pause, beat (fails), backoff, pause, beat, pause, beat
    assert clock.pauses[:4] == [5.0, 1.0, 5.0, 5.0]
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.getMessage() == "flush failed" and record.exc_info is not None


async def test_cancel_stops_it_during_a_pause_and_during_a_beat() -> None:
    started = asyncio.Event()

    async def slow_beat() -> None:
        started.set()
        await asyncio.sleep(3600)

    task = asyncio.create_task(run_every(slow_beat, 3600, name="slow"))
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    beats: list[int] = []

    async def quick_beat() -> None:
        beats.append(1)

    waiting = asyncio.create_task(run_every(quick_beat, 3600, name="idle", first_wait=True))
    await asyncio.sleep(0.05)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert beats == []  # first_wait: no beat before the first interval


async def test_wake_beats_early_and_is_cleared() -> None:
    wake, beats = asyncio.Event(), asyncio.Queue[int]()

    async def beat() -> None:
        beats.put_nowait(1)

    task = asyncio.create_task(run_every(beat, 3600, name="woken", wake=wake, first_wait=True))
    for _ in range(2):
        await asyncio.sleep(0.01)
        assert beats.empty()
        wake.set()
        await asyncio.wait_for(beats.get(), 5)  # long before the hour is up
        assert not wake.is_set()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_nonsense_intervals_are_refused_by_name() -> None:
    async def beat() -> None:
        pass

    with pytest.raises(ValueError, match="tick: the interval must be positive"):
        await run_every(beat, 0, name="tick")
    with pytest.raises(ValueError, match="needs a wake event"):
        await run_every(beat, None, name="tick", first_wait=True)
