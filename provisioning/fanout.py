"""Broker failover on the cloud side: terminal rights and revocations on every broker.

Mosquitto has no clustering, so each broker keeps its own dynamic-security state and its own
CRL. ``BrokerAdmins`` sends every dynamic-security change to each broker's ``BrokerAdmin``;
``Revocations`` runs each broker's ``RevocationPublisher``. A broker that cannot be reached
does not stop the others: the change is applied where it can be, the broker is remembered as
stale, and ``heal`` brings it in line with the registry once it answers again (enrolled
terminals added, revoked ones removed). An operator's disable or enable is refused (raised)
while any broker is unreachable: a terminal disabled on one broker only would simply fail
over to the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiomqtt

from common.aio import within
from common.errors import CuntongError
from provisioning.dynsec import BrokerAdmin, BrokerAdminError, ClientState
from provisioning.revocation import RevocationPublisher

log = logging.getLogger("cuntong.provisioning.fanout")

T = TypeVar("T")
Roster = Callable[[], Awaitable[tuple[list[str], list[str]]]]


def _label(admin: BrokerAdmin) -> str:
    return f"{admin.host}:{admin.port}"


@dataclass
class BrokerAdmins:
    """Every broker's dynamic-security control, used as one (see the module docstring)."""

    admins: list[BrokerAdmin]
    #: Brokers whose last change failed: ``heal`` synchronises them.
    stale: set[int] = field(default_factory=set)

    @property
    def first(self) -> BrokerAdmin:
        return self.admins[0]

    async def _each(self, call: Callable[[BrokerAdmin], Awaitable[T]]) -> list[T]:
        """``call`` on every broker; raises one BrokerAdminError naming each that failed,
        after the others were done."""
        results: list[T] = []
        failed: list[str] = []
        for i, admin in enumerate(self.admins):
            try:
                results.append(await call(admin))
            except BrokerAdminError as err:
                self.stale.add(i)
                failed.append(f"broker {_label(admin)}: {err}")
        if failed:
            raise BrokerAdminError("; ".join(failed))
        return results

    async def add_terminals(self, terminal_ids: Iterable[str]) -> None:
        ids = list(terminal_ids)
        await self._each(lambda a: a.add_terminals(ids))

    async def remove_terminals(self, terminal_ids: Iterable[str]) -> None:
        ids = list(terminal_ids)
        await self._each(lambda a: a.remove_terminals(ids))

    async def enrolled(self, terminal_ids: Sequence[str], now: dt.datetime) -> None:
        """``Provisioner.on_enrolled``: never fails the enrolment; ``heal`` catches up."""
        try:
            await self.add_terminals(terminal_ids)
        except BrokerAdminError as err:
            log.warning("broker rights for %s not added everywhere yet: %s", terminal_ids, err)

    async def disable(self, terminal_id: str) -> ClientState:
        return (await self._each(lambda a: a.disable(terminal_id)))[0]

    async def enable(self, terminal_id: str) -> ClientState:
        return (await self._each(lambda a: a.enable(terminal_id)))[0]

    async def state(self, terminal_id: str) -> ClientState:
        """The first broker's view (every change goes to all of them)."""
        return await self.first.state(terminal_id)

    async def sync(self, active: Iterable[str], removed: Iterable[str]) -> None:
        on, off = list(active), list(removed)
        await self._each(lambda a: a.sync(on, off))
        self.stale.clear()

    async def heal(self, roster: Roster, stop: asyncio.Event, every_s: float = 15.0) -> None:
        """Until ``stop``: every ``every_s``, synchronise the brokers a change missed."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await within(stop.wait(), every_s)
            for i in sorted(self.stale):
                active, removed = await roster()
                try:
                    await self.admins[i].sync(active, removed)
                except BrokerAdminError as err:
                    log.debug("broker %s still out of reach: %s", _label(self.admins[i]), err)
                    continue
                self.stale.discard(i)
                log.info("broker %s brought in line with the registry", _label(self.admins[i]))


@dataclass
class Revocations:
    """``Provisioner.on_revoked`` for every broker: each one's rights, CRL and kick."""

    publishers: list[RevocationPublisher]
    admins: BrokerAdmins | None = None

    async def __call__(self, terminal_ids: Sequence[str], now: dt.datetime) -> None:
        failed: list[str] = []
        for i, publisher in enumerate(self.publishers):
            try:
                await publisher(terminal_ids, now)
            except (CuntongError, OSError, TimeoutError, aiomqtt.MqttError) as err:
                if self.admins is not None:
                    self.admins.stale.add(i)  # heal removes the revoked client when it is back
                failed.append(f"broker {publisher.broker_host}:{publisher.broker_port}: {err}")
        if failed:
            log.warning("revocation of %s not applied everywhere: %s", terminal_ids, failed)

    async def publish(self, now: dt.datetime) -> bool:
        """Each broker's CRL (``keep_crl_fresh`` calls this)."""
        changed = False
        for publisher in self.publishers:
            try:
                changed = await publisher.publish(now) or changed
            except (OSError, TimeoutError) as err:
                log.warning("CRL of broker %s:%d not applied: %s", *_where(publisher), err)
        return changed


def _where(publisher: RevocationPublisher) -> tuple[Any, ...]:
    return publisher.broker_host, publisher.broker_port
