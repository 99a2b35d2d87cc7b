"""The cloud's secured mode: provisioning's CA, keys and broker credentials, built once.

Created in the app's lifespan from ``CloudSettings`` when ``state_dir`` is set; the ingest
consumer and the routers take what they need from it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt

from cloud import lease
from cloud.models import Terminal
from common import suite as suite_lib
from common.errors import CuntongError
from common.settings import BrokerEndpoint, CloudSettings
from common.wire import commands as signed
from provisioning import ca as ca_lib
from provisioning import keys as keys_lib
from provisioning import wiring
from provisioning.ca import service_name
from provisioning.dynsec import BrokerAdminError
from provisioning.fanout import BrokerAdmins, Revocations
from provisioning.files import ensure_private_dir, write_private
from provisioning.keys import CloudKeys
from provisioning.protocol import BrokerAddress
from provisioning.revocation import (
    RevocationPublisher,
    SessionSweep,
    keep_crl_fresh,
    stale_service_links,
)
from provisioning.service import Provisioner, broker_roster

log = logging.getLogger("cuntong.cloud.security")


#: The link that drives the broker's dynamic-security plugin.
ADMIN_SUFFIX = "-admin"


#: Presence rows (``cloud.lease.present``) of running ingest instances: this + the instance.
INGEST_PRESENCE = "ingest:"


def broker_services(*instances: str) -> dict[str, str]:
    """Broker ACL entries for cloud processes: each ingesting instance holds four links
    (business over MQTT 5, telemetry over 3.1.1, the fleet command sender — see
    ``fleet.sender.INSTANCE_SUFFIX`` — and the teller desk's terminal link), each with its
    own certificate), plus its ``-admin`` control link."""
    links = ("", "-telemetry", "-fleet", "-desk")
    roles = {f"{instance}{suffix}": "cloud" for instance in instances for suffix in links}
    # The broker's dynamic-security control (terminal rights), the only admin identity.
    return roles | {f"{instance}{ADMIN_SUFFIX}": "admin" for instance in instances}


def service_client_id(
    settings: CloudSettings, security: Security | None, suffix: str, dev_id: str
) -> str:
    """The client id of one of this instance's links: secured, the broker makes the link
    certificate's CN the client id, so ask for that; in development mode, ``dev_id``."""
    if security is None:
        return dev_id[:64]
    return security.client_id(settings.service_instance + suffix)


def service_client(
    settings: CloudSettings,
    security: Security | None,
    suffix: str,
    client_id: str,
    endpoint: BrokerEndpoint | None = None,
    **options: Any,
) -> aiomqtt.Client:
    """An MQTT client for one of this instance's links (``suffix`` names the link's own
    certificate, see ``broker_services``) to ``endpoint`` (default: the first broker; with
    failover each link has one client per broker, under the same client id: the brokers
    are separate servers); ``options`` are the link's aiomqtt options."""
    tls = None
    if security is not None:
        tls = security.mqtt_tls(settings.service_instance + suffix, dt.datetime.now(dt.UTC))
    endpoint = endpoint or settings.broker_endpoints()[0]
    return aiomqtt.Client(
        endpoint.host,
        endpoint.port,
        identifier=client_id,
        tls_context=tls,
        timeout=10,
        **options,
    )


@dataclass
class Security:
    provisioner: Provisioner
    keys: CloudKeys
    suite: suite_lib.Suite
    settings: CloudSettings
    #: Every broker's dynamic-security control (one per ``broker_endpoints()`` entry).
    admin: BrokerAdmins | None = None

    @classmethod
    def build(cls, s: CloudSettings, now: dt.datetime) -> Security:
        """Rights, revocations and CRLs on every broker of ``s.broker_endpoints()`` (broker
        ``i`` keeps its files in ``wiring.broker_tls_dir(i)``); terminals get the list in
        that order, each at its public host."""
        assert s.state_dir is not None
        endpoints = s.broker_endpoints()
        instance = s.service_instance + ADMIN_SUFFIX
        each = [wiring.broker_admin(s.state_dir, e.host, e.port, instance) for e in endpoints]
        admins = BrokerAdmins(each)
        publishers = [
            wiring.revocation_publisher(s.state_dir, e.host, e.port, now, admin, index=i)
            for i, (e, admin) in enumerate(zip(endpoints, each, strict=True))
        ]
        addresses = [
            BrokerAddress(host=host, port=e.port, server_name=host)
            for e in endpoints
            for host in [e.public_host or s.public_broker_host or e.host]
        ]
        prov = Provisioner(
            ca=ca_lib.load_or_create(s.state_dir, now),
            keys=keys_lib.load_or_create(s.state_dir),
            broker=addresses[0],
            more_brokers=addresses[1:],
            on_revoked=Revocations(publishers, admins),
            on_enrolled=admins.enrolled,
        )
        prov.suite = suite_lib.Suite(s.crypto_suite)
        return cls(prov, prov.keys, prov.suite, s, admins)

    def mqtt_tls(self, instance: str, now: dt.datetime) -> ssl.SSLContext:
        assert self.settings.state_dir is not None
        return wiring.service_tls_context(self.settings.state_dir, instance, now)

    @staticmethod
    def client_id(instance: str) -> str:
        """The broker makes the certificate CN the client id; ask for the same."""
        return service_name(instance)

    def event_authentic(self, terminal_id: str, payload: bytes, tag: str | None) -> bool:
        key = self.keys.event_mac_key(self.suite, terminal_id)
        return signed.event_tag_valid(key, payload, tag)

    async def sync_broker(self) -> None:
        """Give every enrolled terminal its broker client and role, and none to revoked ones
        (idempotent; a terminal an operator disabled stays disabled)."""
        if self.admin is None:
            return
        active, removed = await broker_roster()
        try:
            await self.admin.sync(active, removed)
        except BrokerAdminError as err:
            log.warning("broker rights not synchronised: %s", err)

    async def keep_crl_fresh(self, stop: asyncio.Event) -> None:
        """Without a fresh CRL, OpenSSL refuses every client once it passes next-update.
        First brings the broker's terminal clients in line with the registry."""
        await self.sync_broker()
        publisher = self.provisioner.on_revoked
        assert isinstance(publisher, Revocations)
        heal = (
            asyncio.create_task(self.admin.heal(broker_roster, stop), name="broker-heal")
            if self.admin is not None
            else None
        )
        try:
            await keep_crl_fresh(publisher, lambda: dt.datetime.now(dt.UTC), stop)
        finally:
            if heal is not None:
                heal.cancel()
                await asyncio.gather(heal, return_exceptions=True)

    async def sweep_sessions(
        self, every_s: float = 3600.0, sweep: SessionSweep | None = None
    ) -> None:
        """Leader singleton: end the broker sessions that should end, since the broker never
        expires ours (``common.mqtt_link.SESSION_NEVER_EXPIRES``). When the term starts, the
        other instances' desk and fleet-sender sessions; then, every ``every_s``, those of
        terminals offline longer than ``SessionSweep.limit`` (a week, the expiry agents used
        to ask; a revoked or decommissioned terminal was ended at its revocation and is
        caught here too once it has been away that long). Never raises: a failed pass is
        logged and tried again at the next."""
        sweep = sweep or SessionSweep()
        try:
            await self.end_stale_service_links(dt.datetime.now(dt.UTC))
        except (CuntongError, OSError, TimeoutError, aiomqtt.MqttError) as err:
            log.warning("other instances' desk/fleet sessions not ended: %s", err)
        while True:
            await self.sweep_once(sweep, dt.datetime.now(dt.UTC))
            await asyncio.sleep(every_s)

    async def sweep_once(self, sweep: SessionSweep, now: dt.datetime) -> list[str]:
        """One pass over the terminals ``sweep`` says are due; returns their ids. The pass
        counts as done only if every kick on every broker succeeded."""
        start, end = sweep.due(now)
        ids = await Terminal.filter(
            online=False, last_seen_at__gte=start, last_seen_at__lt=end
        ).values_list("id", flat=True)
        failed = 0
        for terminal_id in ids:
            for publisher in self._publishers():
                try:
                    await publisher.kick(str(terminal_id), now)
                except (CuntongError, OSError, TimeoutError, aiomqtt.MqttError) as err:
                    failed += 1
                    log.warning(
                        "session of %s on %s:%d not ended: %s",
                        terminal_id,
                        publisher.broker_host,
                        publisher.broker_port,
                        err,
                    )
        if not failed:
            sweep.done(end)
        if ids:
            log.info(
                "ended the broker sessions of %d terminal(s) offline since before %s",
                len(ids) - failed,
                end.isoformat(),
            )
        return [str(t) for t in ids]

    async def end_stale_service_links(self, now: dt.datetime) -> list[str]:
        """End, on every broker, the desk and fleet-sender sessions of instances other than
        this one (only the lease holder runs those links); returns the instances ended."""
        if self.admin is None:
            return []
        ended: list[str] = []
        for admin, publisher in zip(self.admin.admins, self._publishers(), strict=True):
            names = await admin.client_names()
            for instance in stale_service_links(names, self.settings.service_instance):
                await publisher.kick_service(instance, now)
                ended.append(instance)
        if ended:
            log.info("ended the sessions of other instances' leader links: %s", ended)
        return ended

    async def end_retired_ingest(self, now: dt.datetime, links: Iterable[str]) -> list[str]:
        """End, on every broker, the ingest sessions of instances not seen alive for
        ``ingest_retire_after_s`` (``cloud.lease.present`` rows named ``ingest:<instance>``,
        which every running ingest renews): a retired instance's persistent session stays in
        the shared telemetry group, and Mosquitto keeps handing it its share, which then
        waits for the terminals' re-send. Ending it loses nothing (nothing it held was
        confirmed). ``links``: the suffixes of an ingest's links. The instances ended."""
        grace = self.settings.ingest_retire_after_s
        ended = []
        for name in await lease.lapsed(INGEST_PRESENCE, grace):
            instance = name.removeprefix(INGEST_PRESENCE)
            try:
                for publisher in self._publishers():
                    for suffix in links:
                        await publisher.kick_service(instance + suffix, now)
            except (CuntongError, OSError, TimeoutError, aiomqtt.MqttError) as err:
                log.warning("sessions of retired ingest %s not ended: %s", instance, err)
                continue
            if await lease.forget(name, grace):
                ended.append(instance)
        if ended:
            log.info("ended the broker sessions of retired ingest instances: %s", ended)
        return ended

    def _publishers(self) -> list[RevocationPublisher]:
        revocations = self.provisioner.on_revoked
        assert isinstance(revocations, Revocations)
        return revocations.publishers


def terminal_api_tls(state_dir: Path, hosts: Iterable[str], now: dt.datetime) -> tuple[Path, Path]:
    """Certificate and key for the terminal-facing HTTPS listener (enrolment, renewal),
    issued by our CA so terminals verify it against the root in their factory claim.
    Re-issued at every start: the file is cheap and never outlives the CA."""
    authority = ca_lib.load_or_create(state_dir, now)
    folder = ensure_private_dir(state_dir / "terminal-api-tls")
    key = ca_lib.new_key()
    issued = authority.issue_server(key.public_key(), hosts, now)
    write_private(folder / "key.pem", ca_lib.key_pem(key))
    write_private(folder / "cert.pem", issued.chain_pem)
    return folder / "cert.pem", folder / "key.pem"
