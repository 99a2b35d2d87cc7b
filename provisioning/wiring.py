"""Helpers the stack launcher, the cloud and the agent call to switch provisioning on.

Stack: ``cfg, files = secure_broker(state_dir, port, now)`` then ``Broker(cfg, ...).start()``
gives an mTLS-only broker with dynamic-security authorisation. Cloud:
``service_tls_context(state_dir, "api", now)`` per process (the broker uses the CN as
client id, so each process has its own instance name),
``broker_admin(...)`` (the control link), ``revocation_publisher(..., admin)`` and
``cloud_provisioner(..., publisher, admin)`` for the routers, and
``keep_crl_fresh(publisher, clock, stop)`` as a lifespan task. Agent:
``device.ensure_identity(...)`` then ``Identity(dir).ssl_context()``. Simulated factory:
``write_factory_claims(...)`` writes each terminal's ``claim.json``.
"""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from cryptography import x509

from provisioning import broker as broker_lib
from provisioning import brokerplugin
from provisioning import ca as ca_lib
from provisioning import keys as keys_lib
from provisioning.broker import BrokerConfig
from provisioning.device import client_ssl_context, renewal_due
from provisioning.dynsec import BrokerAdmin
from provisioning.files import ensure_private_dir, write_private
from provisioning.protocol import BrokerAddress, FactoryClaim, Region
from provisioning.revocation import RevocationPublisher
from provisioning.service import Provisioner

BROKER_TLS_DIR = "broker-tls"


def broker_tls_dir(index: int) -> str:
    """The folder (under the cloud's state dir) of the ``index``-th broker of a failover
    list: each keeps its own dynamic-security file, CRL and pid file, all under one CA."""
    return BROKER_TLS_DIR if index == 0 else f"{BROKER_TLS_DIR}-{index + 1}"


def secure_broker(
    state_dir: Path,
    port: int,
    now: dt.datetime,
    hosts: Iterable[str] = ("127.0.0.1", "localhost"),
    services: Mapping[str, str] = broker_lib.DEFAULT_SERVICES,
    host: str = "127.0.0.1",
    index: int = 0,
    refusal_log: bool = False,
    refusals: bool = True,
) -> tuple[BrokerConfig, broker_lib.BrokerFiles]:
    """CA (created on first start), broker certificate, CRL and the dynamic-security state
    (service roles; terminals the broker saved are kept); the mTLS BrokerConfig. ``index``:
    which broker of a failover list (its own folder, ``broker_tls_dir``); ``refusal_log``:
    log refused SUBSCRIBEs and PUBLISHes (``provisioning.brokerlog``); ``refusals``: load
    the refusal plugin (built into ``state_dir/broker-plugin`` on first use), which
    refuses and reports a terminal's SUBSCRIBE outside its subtree."""
    authority = ca_lib.load_or_create(state_dir, now)
    folder = state_dir / broker_tls_dir(index)
    files = broker_lib.prepare(authority, folder, hosts, now, services=services)
    plugin = brokerplugin.build(state_dir / "broker-plugin") if refusals else None
    cfg = broker_lib.broker_config(port, files, host, refusal_log=refusal_log, refusals=plugin)
    return cfg, files


def service_tls_context(state_dir: Path, instance: str, now: dt.datetime) -> ssl.SSLContext:
    """Client TLS context for a cloud service instance (``svc.<instance>``); renews when due."""
    authority = ca_lib.load_or_create(state_dir, now)
    folder = ensure_private_dir(state_dir / "services" / instance)
    cert_path, key_path, ca_path = folder / "cert.pem", folder / "key.pem", folder / "ca.pem"
    current = x509.load_pem_x509_certificate(cert_path.read_bytes()) if cert_path.exists() else None
    if current is None or renewal_due(current, now):
        key = ca_lib.new_key()
        issued = authority.issue_service(key.public_key(), instance, now)
        write_private(key_path, ca_lib.key_pem(key))
        write_private(cert_path, issued.chain_pem)
    write_private(ca_path, authority.root_pem)
    return client_ssl_context(ca_path, cert_path, key_path)


def broker_admin(state_dir: Path, broker_host: str, broker_port: int, instance: str) -> BrokerAdmin:
    """The dynamic-security control link as service ``instance`` (role ``admin``)."""
    return BrokerAdmin(
        broker_host,
        broker_port,
        lambda: service_tls_context(state_dir, instance, dt.datetime.now(dt.UTC)),
    )


def revocation_publisher(
    state_dir: Path,
    broker_host: str,
    broker_port: int,
    now: dt.datetime,
    admin: BrokerAdmin | None = None,
    index: int = 0,
) -> RevocationPublisher:
    """Client deletion + CRL writer + broker reload + kick for the stack's broker (the
    ``index``-th of a failover list)."""
    authority = ca_lib.load_or_create(state_dir, now)
    files = broker_lib.BrokerFiles(state_dir / broker_tls_dir(index))
    return RevocationPublisher(authority, files, broker_host, broker_port, admin=admin)


def cloud_provisioner(
    state_dir: Path,
    broker_host: str,
    broker_port: int,
    now: dt.datetime,
    publisher: RevocationPublisher | None = None,
    admin: BrokerAdmin | None = None,
) -> Provisioner:
    """The Provisioner for the cloud API; revocations reload and kick when the broker is ours;
    with ``admin``, enrolment gives the terminal its broker rights and revocation takes them."""
    return Provisioner(
        ca=ca_lib.load_or_create(state_dir, now),
        keys=keys_lib.load_or_create(state_dir),
        broker=BrokerAddress(host=broker_host, port=broker_port, server_name=broker_host),
        on_revoked=publisher
        or revocation_publisher(state_dir, broker_host, broker_port, now, admin),
        on_enrolled=admin.enrolled if admin is not None else None,
    )


async def write_factory_claims(
    provisioner: Provisioner,
    enrol_url: str,
    terminals: Sequence[tuple[str, str, Region]],
    folder_of: Callable[[str], Path],
    now: dt.datetime,
    valid_for: dt.timedelta = dt.timedelta(days=7),
) -> str:
    """Act as the factory for a batch: one claim, a ``claim.json`` per terminal.

    ``terminals`` are (terminal id, hardware model, region); each claim file goes to
    ``folder_of(terminal_id) / "claim.json"`` (0600). Needs Tortoise open on the cloud's
    database. Returns the claim id.
    """
    claim, token = await provisioner.create_claim(
        now, max_uses=len(terminals), valid_for=valid_for, label="factory batch"
    )
    for terminal_id, model, region in terminals:
        factory = FactoryClaim(
            enrol_url=enrol_url,
            ca_pem=provisioner.ca.root_pem.decode(),
            claim_token=token,
            terminal_id=terminal_id,
            hardware_model=model,
            region=region,
        )
        folder = ensure_private_dir(folder_of(terminal_id))
        write_private(folder / "claim.json", factory.model_dump_json(indent=2).encode())
    return claim.id
