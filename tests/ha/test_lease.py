"""The database lease (``cloud.lease``) on real SQLite and PostgreSQL: one holder at a time,
takeover only after expiry, renewals and fencing refused once the lease has moved."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tortoise.backends.base.executor import EXECUTOR_CACHE

from cloud.db import close_db, open_db
from cloud.lease import Lease, LeaseLost, fenced, lead
from common import lease as pure
from cuntong.servers.postgres import Postgres
from tests.helpers import eventually, fresh_database


@pytest.fixture(params=["sqlite", "postgres"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    EXECUTOR_CACHE.clear()  # tortoise caches SQL per table name, not per dialect
    if request.param == "sqlite":
        url = f"sqlite://{tmp_path / 'lease.sqlite3'}"
    else:
        pg: Postgres = request.getfixturevalue("postgres_server")
        url = await fresh_database(pg, "lease")
    await open_db(url)
    try:
        yield url
    finally:
        await close_db()


async def test_one_holder_then_takeover_after_expiry_with_a_new_epoch(db: str) -> None:
    a = Lease("t1", "replica-a", 0.5)
    b = Lease("t1", "replica-b", 0.5)
    ta = await a.acquire()
    assert ta is not None and ta.epoch == 1
    assert await b.acquire() is None  # held
    assert await a.holder_now() == ("replica-a", 1)
    assert await a.renew(ta)
    # a stops renewing (dies): b gets it once the database's clock passes the expiry
    tb = await eventually(b.acquire, timeout=10, every=0.05)
    assert tb.epoch == 2
    assert not await a.renew(ta)  # refused, and a's tenure lapses at once
    assert not ta.held(a.clock())
    assert await b.holder_now() == ("replica-b", 2)


async def test_release_hands_over_at_once(db: str) -> None:
    a = Lease("t2", "replica-a", 60)
    b = Lease("t2", "replica-b", 60)
    ta = await a.acquire()
    assert ta is not None and await b.acquire() is None
    await a.release(ta)
    tb = await b.acquire()
    assert tb is not None and tb.epoch == ta.epoch + 1


async def test_fenced_write_refused_for_an_old_epoch_and_a_lapsed_term(db: str) -> None:
    a = Lease("t3", "replica-a", 0.3)
    ta = await a.acquire()
    assert ta is not None
    token = pure.CURRENT.set(ta)
    try:
        async with fenced():  # holder, epoch and expiry agree
            pass
        # paused past its own validity (its monotonic clock moved on): refused locally
        ta.valid_until = time.monotonic() - 1
        with pytest.raises(LeaseLost):
            async with fenced():
                pass
        assert not pure.acting(time.monotonic())
    finally:
        pure.CURRENT.reset(token)
    b = Lease("t3", "replica-b", 30)
    tb = await eventually(b.acquire, timeout=10, every=0.05)
    ta.valid_until = time.monotonic() + 100  # even a process that believes it still holds ...
    token = pure.CURRENT.set(ta)
    try:
        with pytest.raises(LeaseLost):  # ... is refused by the database: the epoch moved
            async with fenced():
                pass
    finally:
        pure.CURRENT.reset(token)
    assert tb.epoch == ta.epoch + 1


async def test_lead_runs_the_term_in_its_tenure_and_stops_it_when_the_lease_moves(
    db: str,
) -> None:
    a = Lease("t4", "replica-a", 0.6)
    seen: list[int] = []
    stopped = asyncio.Event()

    async def term(tenure: pure.Tenure) -> None:
        current = pure.CURRENT.get()
        assert current is tenure
        seen.append(tenure.epoch)
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()

    runner = asyncio.create_task(lead(a, term, renew_s=0.1))
    try:
        await eventually(lambda: asyncio.sleep(0, result=seen), timeout=10)
        # someone else takes the row by force (as after a long pause of ours)
        from tortoise import Tortoise

        await Tortoise.get_connection("default").execute_query(
            "UPDATE leader_lease SET holder = 'intruder', epoch = epoch + 1 WHERE name = 't4'"
        )
        await asyncio.wait_for(stopped.wait(), 10)
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    assert seen[0] >= 1


async def test_acquire_can_wait_for_the_lease_to_have_been_expired_a_while(db: str) -> None:
    a = Lease("t5", "replica-a", 0.3)
    b = Lease("t5", "replica-b", 0.3)
    assert await a.acquire() is not None  # and a dies: no renewal
    await eventually(lambda: _free(b), timeout=10, every=0.05)
    assert await b.acquire(expired_for_s=600) is None  # expired, but not for that long
    tb = await b.acquire()
    assert tb is not None and tb.epoch == 2


async def _free(lease: Lease) -> bool:
    return await lease.holder_now() is None


async def test_a_newcomer_leaves_a_dead_leaders_lease_to_the_standby_already_waiting(
    db: str,
) -> None:
    """A leader killed and started again at once (systemd, ``cuntong up``'s supervisor) is a
    newcomer: the standby that was waiting when it died takes the lease, not the restart."""
    ttl = 2.0
    dead = Lease("t6", "leader", ttl)
    tenure = await dead.acquire()
    assert tenure is not None
    terms: list[str] = []

    def term_of(name: str):  # type: ignore[no-untyped-def]
        async def term(_tenure: pure.Tenure) -> None:
            terms.append(name)
            await asyncio.Event().wait()

        return term

    standby = asyncio.create_task(
        lead(Lease("t6", "standby", ttl), term_of("standby"), renew_s=0.5)
    )
    restarted = None
    try:
        # the leader renews while the standby settles in (past a newcomer's two TTLs) ...
        settled = time.monotonic() + 2 * ttl + 0.5
        while time.monotonic() < settled:
            assert await dead.renew(tenure)
            await asyncio.sleep(0.1)
        assert terms == []
        # ... then dies, and comes straight back as a new process (a new holder)
        again = Lease("t6", "leader-restarted", ttl)
        # it polls ten times as often as the standby: first to see the lease expire, it
        # would take it, were it not a newcomer
        restarted = asyncio.create_task(lead(again, term_of("restarted"), renew_s=0.05))
        await eventually(lambda: asyncio.sleep(0, result=terms), timeout=20, every=0.05)
        await asyncio.sleep(ttl + 0.5)  # the restarted one stays a standby
        assert terms == ["standby"]
        assert (await again.holder_now() or ("",))[0] == "standby"
    finally:
        for task in (standby, restarted):
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in (standby, restarted) if t), return_exceptions=True)
