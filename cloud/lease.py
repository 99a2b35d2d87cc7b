"""Leadership by lease in the database: which API replica runs the cloud's singletons.

A lease is a row of ``leader_lease`` (``cloud.models.LeaderLease``): holder, expiry on the
database's clock, and an epoch (the fencing token, bumped at each change of hands). It works
the same on SQLite (replicas on one box sharing the file) and PostgreSQL (replicas on many
hosts): both are plain conditional UPDATEs, judged by the database's own clock so replicas
on different hosts never compare theirs.

- ``Lease.acquire`` takes the lease if it is free or expired (epoch + 1);
- ``Lease.renew`` pushes the expiry on, only for the same holder and epoch;
- ``Lease.release`` frees it on a clean stop, so a standby takes over at once (an upgrade
  restarting replicas one by one costs a renewal period, not a whole TTL);
- ``lead`` is the loop a replica runs: standby until it wins, then the term (the
  singletons) runs inside the tenure's context (``common.lease.CURRENT``) while renewals
  succeed; a renewal refused, failing or late ends the term (its tasks are cancelled) and
  the replica is a standby again. A newcomer (a replica in its first two TTLs as a standby,
  e.g. a leader killed and restarted at once) takes only a lease expired for a whole TTL,
  so a standby that was already waiting takes over first;
- ``fenced()`` is the transaction a leader's write that must not happen twice goes in: it
  first confirms (and, on PostgreSQL, row-locks) the lease row for this holder and epoch,
  so a paused old leader's write is refused (``LeaseLost``) once a standby has taken over,
  and a takeover waits for a write in flight to commit. Outside a term it is a plain
  transaction.

The local side of the contract (stop acting by the replica's own clock before the database
lets anyone else start) is ``common.lease.Tenure``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from tortoise import Tortoise
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from common.aio import within
from common.errors import LeaseLost
from common.lease import CURRENT, Tenure

__all__ = [
    "CLOUD",
    "Lease",
    "LeaseLost",
    "fenced",
    "forget",
    "holder_id",
    "lapsed",
    "lead",
    "present",
]

log = logging.getLogger("cuntong.lease")

#: The lease every cloud singleton runs under (one leader replica runs them all: the desk,
#: the command sender, rollouts, alerting and the reconcilers work together).
CLOUD = "cloud"

_TABLE = '"leader_lease"'
#: Seconds since the epoch on the database's clock.
_DB_NOW = {
    "sqlite": "((julianday('now') - 2440587.5) * 86400.0)",
    "postgres": "extract(epoch from clock_timestamp())::float8",
}


def holder_id() -> str:
    """This process among the replicas: host, pid and a nonce (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _sql(conn: BaseDBAsyncClient, text: str) -> str:
    """Dialect: the database's clock for ``{now}``; ``$n`` parameters (and ``::float8``
    casts) as PostgreSQL writes them, numbered ``?n`` ones for SQLite."""
    dialect = conn.schema_generator.DIALECT
    text = text.replace("{now}", _DB_NOW[dialect]).replace("{table}", _TABLE)
    if dialect == "postgres":
        return text
    text = text.replace("::float8", "")  # SQLite's REAL needs no cast
    for n in range(9, 0, -1):  # SQLite: "?NNN" numbered parameters
        text = text.replace(f"${n}", f"?{n}")
    return text


async def _query(
    conn: BaseDBAsyncClient | None, text: str, values: list[Any]
) -> list[dict[str, Any]]:
    c = conn or Tortoise.get_connection("default")
    # the dict form fetches rows on both backends (asyncpg's plain form drops RETURNING's)
    return await c.execute_query_dict(_sql(c, text), values)


class Lease:
    """One named lease, held for ``ttl_s`` seconds from each renewal."""

    def __init__(
        self,
        name: str,
        holder: str,
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_s <= 0:
            raise ValueError(f"lease {name}: the TTL must be positive, not {ttl_s}")
        self.name, self.holder, self.ttl_s, self.clock = name, holder, ttl_s, clock

    async def acquire(self, expired_for_s: float = 0.0) -> Tenure | None:
        """Take the lease if it is free or expired; the new tenure, or None (someone holds it).
        ``expired_for_s``: only once it has been expired that long (a newcomer leaving the
        first chance to the standbys that were waiting before it; see ``lead``)."""
        await _query(
            None,
            "INSERT INTO {table} (name, holder, epoch, expires_at) VALUES ($1, '', 0, 0) "
            "ON CONFLICT (name) DO NOTHING",
            [self.name],
        )
        started = self.clock()
        rows = await _query(
            None,
            "UPDATE {table} SET holder = $1, epoch = epoch + 1, expires_at = {now} + $2::float8 "
            "WHERE name = $3 AND expires_at < {now} - $4::float8 RETURNING epoch",
            [self.holder, self.ttl_s, self.name, expired_for_s],
        )
        if not rows:
            return None
        return Tenure(self.name, self.holder, int(rows[0]["epoch"]), started + self.ttl_s)

    async def renew(self, tenure: Tenure) -> bool:
        """Push the expiry on; False when the lease has changed hands (the tenure lapses)."""
        started = self.clock()
        rows = await _query(
            None,
            "UPDATE {table} SET expires_at = {now} + $1::float8 "
            "WHERE name = $2 AND holder = $3 AND epoch = $4 RETURNING epoch",
            [self.ttl_s, self.name, tenure.holder, tenure.epoch],
        )
        if not rows:
            tenure.lapse()
            return False
        tenure.renewed(started, self.ttl_s)
        return True

    async def release(self, tenure: Tenure) -> None:
        """Give the lease up now (a clean stop): a standby need not wait for it to expire."""
        tenure.lapse()
        await _query(
            None,
            "UPDATE {table} SET expires_at = 0 WHERE name = $1 AND holder = $2 AND epoch = $3",
            [self.name, tenure.holder, tenure.epoch],
        )

    async def holder_now(self) -> tuple[str, int] | None:
        """Who holds the lease by the database's clock (holder, epoch); None if nobody."""
        rows = await _query(
            None,
            "SELECT holder, epoch FROM {table} WHERE name = $1 AND expires_at >= {now}",
            [self.name],
        )
        return (str(rows[0]["holder"]), int(rows[0]["epoch"])) if rows else None


# ---- presence: "this process is alive" rows in the same table, no epoch, no contest ----------


async def present(name: str, holder: str, ttl_s: float) -> None:
    """Mark ``name`` alive for ``ttl_s`` more seconds (each instance has its own name, so
    nobody contends for it; a restarted instance simply takes its row over)."""
    await _query(
        None,
        "INSERT INTO {table} (name, holder, epoch, expires_at) VALUES ($1, $2, 0, {now} + "
        "$3::float8) ON CONFLICT (name) DO UPDATE SET holder = $2, expires_at = {now} + "
        "$3::float8",
        [name, holder, ttl_s],
    )


async def lapsed(prefix: str, grace_s: float) -> list[str]:
    """The names starting with ``prefix`` not marked alive for ``grace_s`` past their expiry."""
    rows = await _query(
        None,
        "SELECT name FROM {table} WHERE substr(name, 1, $1) = $2 AND expires_at < {now} - "
        "$3::float8 ORDER BY name",
        [len(prefix), prefix, grace_s],
    )
    return [str(r["name"]) for r in rows]


async def forget(name: str, grace_s: float) -> bool:
    """Drop ``name``'s row if it is still lapsed (it did not come back meanwhile)."""
    rows = await _query(
        None,
        "DELETE FROM {table} WHERE name = $1 AND expires_at < {now} - $2::float8 RETURNING name",
        [name, grace_s],
    )
    return bool(rows)


@contextlib.asynccontextmanager
async def fenced() -> AsyncIterator[BaseDBAsyncClient]:
    """A transaction for a leader's write: refused with ``LeaseLost`` unless the running
    term's lease is still this holder's at this epoch (see the module docstring)."""
    tenure = CURRENT.get()
    if tenure is not None and not tenure.held(time.monotonic()):
        # Before the first await: a process waking from a pause is refused here at once,
        # before its renewal loop can cancel the writer halfway (a statement already handed
        # to the driver would still run).
        tenure.lapse()
        raise LeaseLost(f"lease {tenure.name} epoch {tenure.epoch}: our term has lapsed")
    async with in_transaction() as conn:
        if tenure is not None:
            rows = await _query(
                conn,
                "UPDATE {table} SET epoch = epoch WHERE name = $1 AND holder = $2 "
                "AND epoch = $3 AND expires_at > {now} RETURNING epoch",
                [tenure.name, tenure.holder, tenure.epoch],
            )
            if not rows or not tenure.held(time.monotonic()):
                tenure.lapse()
                raise LeaseLost(f"lease {tenure.name} epoch {tenure.epoch} is no longer ours")
        yield conn


Term = Callable[[Tenure], Awaitable[None]]


async def lead(
    lease: Lease,
    term: Term,
    *,
    renew_s: float | None = None,
    leading: asyncio.Event | None = None,
) -> None:
    """Run ``term(tenure)`` whenever this replica holds ``lease``; returns only by
    cancellation (then the term is stopped and the lease released).

    ``term`` runs in its own task inside the tenure's context, until it returns, raises or
    is cancelled because the lease was lost. Renewals and standby attempts run every
    ``renew_s`` (default a third of the TTL: two may fail before the term ends). ``leading``
    is set while this replica leads."""
    every = renew_s or lease.ttl_s / 3
    leading = leading or asyncio.Event()
    waiting_since, said = lease.clock(), False
    while True:
        tenure = None
        # A newcomer yields: in its first two TTLs as a standby, a replica takes
        # only a lease expired for a whole TTL, so the standbys that were already waiting
        # when the leader died take it first. Without this a leader killed and restarted at
        # once (systemd, `cuntong up`'s supervisor) won the lease back about half the time,
        # and one that crashes at every term would keep the desk from a healthy standby.
        newcomer = lease.clock() - waiting_since < 2 * lease.ttl_s
        try:
            tenure = await lease.acquire(lease.ttl_s if newcomer else 0.0)
        except Exception as err:  # the database restarting: stay a standby, try again
            log.warning("lease %s: could not try to acquire: %s", lease.name, err)
        if tenure is None:
            if not said:
                said = True
                with contextlib.suppress(Exception):
                    held = await lease.holder_now()
                    log.info("lease %s: standby (held by %s)", lease.name, held)
            await asyncio.sleep(every)
            continue
        log.info("lease %s: leading (epoch %d, %s)", lease.name, tenure.epoch, lease.holder)
        try:
            await _serve_term(lease, tenure, term, every, leading)
        finally:
            leading.clear()
            with contextlib.suppress(Exception):
                await asyncio.shield(lease.release(tenure))
        waiting_since, said = lease.clock(), False


async def _serve_term(
    lease: Lease, tenure: Tenure, term: Term, every: float, leading: asyncio.Event
) -> None:
    token = CURRENT.set(tenure)
    try:
        running = asyncio.create_task(term(tenure), name=f"lease-{lease.name}-term")
    finally:
        CURRENT.reset(token)
    leading.set()
    try:
        while not running.done():
            await asyncio.wait([running], timeout=every)
            if running.done():
                break
            left = tenure.valid_until - lease.clock()
            try:
                ok = left > 0 and await within(lease.renew(tenure), left)
            except Exception as err:  # a failing or slow database: the term cannot go on
                log.warning("lease %s: renewal failed: %s", lease.name, err)
                ok = False
            if not ok or not tenure.held(lease.clock()):
                tenure.lapse()
                log.warning(
                    "lease %s: lost (epoch %d); stopping the term", lease.name, tenure.epoch
                )
                break
        if running.done() and not running.cancelled() and running.exception() is not None:
            log.error("lease %s: the term failed", lease.name, exc_info=running.exception())
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    await asyncio.sleep(every)  # a failed term does not spin
