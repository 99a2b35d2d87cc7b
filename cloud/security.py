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

from common import suite as suite_lib
from common.settings import CloudSettings
from common.wire import commands as signed
from provisioning import ca as ca_lib
from provisioning import wiring
from provisioning.ca import service_name
from provisioning.dynsec import BrokerAdmin, BrokerAdminError
from provisioning.files import ensure_private_dir, write_private
from provisioning.keys import CloudKeys
from provisioning.revocation import RevocationPublisher, keep_crl_fresh
from provisioning.service import Provisioner, broker_roster

log = logging.getLogger("cuntong.cloud.security")


#: The link that drives the broker's dynamic-security plugin.
ADMIN_SUFFIX = "-admin"


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
    **options: Any,
) -> aiomqtt.Client:
    """An MQTT client for one of this instance's links (``suffix`` names the link's own
    certificate, see ``broker_services``); ``options`` are the link's aiomqtt options."""
    tls = None
    if security is not None:
        tls = security.mqtt_tls(settings.service_instance + suffix, dt.datetime.now(dt.UTC))
    return aiomqtt.Client(
        settings.broker_host,
        settings.broker_port,
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
    admin: BrokerAdmin | None = None

    @classmethod
    def build(cls, s: CloudSettings, now: dt.datetime) -> Security:
        assert s.state_dir is not None
        host = s.public_broker_host or s.broker_host
        admin = wiring.broker_admin(
            s.state_dir, s.broker_host, s.broker_port, s.service_instance + ADMIN_SUFFIX
        )
        publisher = wiring.revocation_publisher(
            s.state_dir, s.broker_host, s.broker_port, now, admin
        )
        prov = wiring.cloud_provisioner(s.state_dir, host, s.broker_port, now, publisher, admin)
        prov.suite = suite_lib.Suite(s.crypto_suite)
        return cls(prov, prov.keys, prov.suite, s, admin)

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
        assert isinstance(publisher, RevocationPublisher)
        await keep_crl_fresh(publisher, lambda: dt.datetime.now(dt.UTC), stop)


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
