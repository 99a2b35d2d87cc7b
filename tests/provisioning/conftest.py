"""Fixtures: a CA per session, a real mTLS Mosquitto per test, terminals with certificates."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import httpx
import pytest
from fastapi import FastAPI
from tortoise import Tortoise

from common import procs
from cuntong.servers.mosquitto import Broker
from provisioning import broker as broker_lib
from provisioning import ca as ca_lib
from provisioning import keys as keys_lib
from provisioning.api import make_router
from provisioning.cli_actions import tortoise_config
from provisioning.device import client_ssl_context, new_csr
from provisioning.dynsec import BrokerAdmin
from provisioning.files import write_private
from provisioning.protocol import BrokerAddress, EnrolmentRequest, Region
from provisioning.revocation import RevocationPublisher
from provisioning.service import Provisioner


@pytest.fixture(scope="session")
def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@pytest.fixture(scope="session")
def ca(tmp_path_factory: pytest.TempPathFactory, now: dt.datetime) -> ca_lib.CertificateAuthority:
    return ca_lib.load_or_create(tmp_path_factory.mktemp("state"), now)


@dataclass
class MtlsBroker:
    broker: Broker
    files: broker_lib.BrokerFiles

    @property
    def port(self) -> int:
        return self.broker.cfg.port


#: Terminal ids the tests issue certificates for straight from the CA (not through the
#: enrolment API): the broker knows them from the start, as for a claim batch's ids.
KNOWN_TERMINALS = (
    *(f"T000{i}" for i in range(1, 10)),
    *(f"T{c}" for c in "ABCDEFGH"),
)


@pytest.fixture
def mtls_broker(
    tmp_path: Path, ca: ca_lib.CertificateAuthority, now: dt.datetime
) -> Iterator[MtlsBroker]:
    files = broker_lib.prepare(
        ca, tmp_path / "broker-tls", ["127.0.0.1", "localhost"], now, terminals=KNOWN_TERMINALS
    )
    b = Broker(broker_lib.broker_config(procs.free_port(), files), tmp_path / "mosquitto")
    b.start()
    try:
        yield MtlsBroker(b, files)
    finally:
        b.stop()


@dataclass
class Terminal:
    terminal_id: str
    serial: int
    ctx: ssl.SSLContext


MakeTerminal = Callable[..., Terminal]


def mqtt_client(port: int, ctx: ssl.SSLContext, identifier: str = "") -> aiomqtt.Client:
    """An MQTT 5 client over mTLS to the loopback broker."""
    return aiomqtt.Client(
        "127.0.0.1",
        port,
        tls_context=ctx,
        identifier=identifier,
        protocol=aiomqtt.ProtocolVersion.V5,
        timeout=5,
    )


@pytest.fixture
def make_terminal(
    tmp_path: Path, ca: ca_lib.CertificateAuthority, now: dt.datetime
) -> MakeTerminal:
    """Issue a certificate straight from the CA (the enrolment API is tested elsewhere)."""

    def make(
        terminal_id: str,
        *,
        issued_at: dt.datetime | None = None,
        days: int = 90,
        authority: ca_lib.CertificateAuthority | None = None,
        service: bool = False,
    ) -> Terminal:
        key = ca_lib.new_key()
        signer = authority or ca
        when = issued_at or now
        if service:
            issued = signer.issue_service(key.public_key(), terminal_id, when, days)
        else:
            issued = signer.issue_device(new_csr(key, terminal_id), terminal_id, when, days)
        folder = tmp_path / "terminals" / f"{terminal_id}-{issued.serial}"
        folder.mkdir(parents=True)
        write_private(folder / "key.pem", ca_lib.key_pem(key))
        write_private(folder / "cert.pem", issued.chain_pem)
        # Terminals always trust *our* root: the broker's certificate comes from it.
        write_private(folder / "ca.pem", ca.root_pem)
        ctx = client_ssl_context(folder / "ca.pem", folder / "cert.pem", folder / "key.pem")
        return Terminal(terminal_id, issued.serial, ctx)

    return make


def _connect_packet(client_id: str) -> bytes:
    cid = client_id.encode()
    variable = b"\x00\x04MQTT\x05\x02\x00\x3c\x00"  # MQTT 5, clean start, keepalive 60, no props
    payload = len(cid).to_bytes(2, "big") + cid
    body = variable + payload
    return b"\x10" + bytes([len(body)]) + body


async def probe(port: int, ctx: ssl.SSLContext | None, client_id: str = "probe") -> str:
    """Open a raw (TLS) connection and send CONNECT: 'connack:<reason>' or 'refused:<why>'."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=ctx), 5
        )
    except (ssl.SSLError, OSError) as err:
        return f"refused:{type(err).__name__}:{err}"
    try:
        # A refused TLS 1.3 client learns it only after the handshake: read first, so the
        # server's alert (which names the reason) arrives before our CONNECT can hit a reset.
        try:
            early = await asyncio.wait_for(reader.read(1), 0.3)
            if not early:
                return "refused:closed"
        except TimeoutError:
            pass
        writer.write(_connect_packet(client_id))
        await writer.drain()
        head = await asyncio.wait_for(reader.read(5), 5)
        if not head:
            return "refused:closed"
        if head[0] == 0x20 and len(head) >= 4:
            return f"connack:{head[3]}"
        return f"refused:unexpected {head.hex()}"
    except (ssl.SSLError, OSError, asyncio.IncompleteReadError) as err:
        return f"refused:{type(err).__name__}:{err}"
    finally:
        writer.close()
        with contextlib.suppress(ssl.SSLError, OSError):
            await writer.wait_closed()


@dataclass
class Clock:
    """The one clock seam the router reads; tests move it."""

    now: dt.datetime

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[None]:
    await Tortoise.init(config=tortoise_config(f"sqlite://{tmp_path / 'registry.sqlite3'}"))
    await Tortoise.generate_schemas()
    try:
        yield
    finally:
        await Tortoise.close_connections()


@dataclass
class Cloud:
    provisioner: Provisioner
    clock: Clock
    http: httpx.AsyncClient
    broker: MtlsBroker | None


def _service_tls(
    ca: ca_lib.CertificateAuthority, instance: str, now: dt.datetime, tmp_path: Path
) -> Callable[[], ssl.SSLContext]:
    """A service identity's TLS context (for ``BrokerAdmin``)."""
    key = ca_lib.new_key()
    issued = ca.issue_service(key.public_key(), instance, now)
    folder = tmp_path / "services" / instance
    folder.mkdir(parents=True, exist_ok=True)
    write_private(folder / "key.pem", ca_lib.key_pem(key))
    write_private(folder / "cert.pem", issued.chain_pem)
    write_private(folder / "ca.pem", ca.root_pem)
    ctx = client_ssl_context(folder / "ca.pem", folder / "cert.pem", folder / "key.pem")
    return lambda: ctx


async def _cloud(
    tmp_path: Path, ca: ca_lib.CertificateAuthority, now: dt.datetime, mtls: MtlsBroker | None
) -> AsyncIterator[Cloud]:
    port = mtls.port if mtls else 8883
    provisioner = Provisioner(
        ca=ca,
        keys=keys_lib.load_or_create(tmp_path / "cloud-state"),
        broker=BrokerAddress(host="127.0.0.1", port=port, server_name="127.0.0.1"),
        config_for=lambda t: {"telemetry_interval_s": 60, "village": t.village},
    )
    if mtls is not None:
        admin = BrokerAdmin("127.0.0.1", port, _service_tls(ca, "admin", now, tmp_path))
        provisioner.on_enrolled = admin.enrolled
        provisioner.on_revoked = RevocationPublisher(ca, mtls.files, "127.0.0.1", port, admin=admin)
    clock = Clock(now)
    app = FastAPI()
    app.include_router(make_router(provisioner, clock))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://cloud") as http:
        yield Cloud(provisioner, clock, http, mtls)


@pytest.fixture
async def cloud(
    db: None, tmp_path: Path, ca: ca_lib.CertificateAuthority, now: dt.datetime
) -> AsyncIterator[Cloud]:
    """Provisioning API in-process (ASGI), no broker."""
    async for c in _cloud(tmp_path, ca, now, None):
        yield c


@pytest.fixture
async def cloud_with_broker(
    db: None,
    tmp_path: Path,
    ca: ca_lib.CertificateAuthority,
    now: dt.datetime,
    mtls_broker: MtlsBroker,
) -> AsyncIterator[Cloud]:
    """Provisioning API wired to a real mTLS mosquitto (revocation reloads and kicks)."""
    async for c in _cloud(tmp_path, ca, now, mtls_broker):
        yield c


SHAANXI = Region(province="陕西省", city="西安市", county="长安区", village="子午街道")


def enrol_request(token: str, terminal_id: str, model: str = "ZN-E1") -> EnrolmentRequest:
    return EnrolmentRequest(
        claim_token=token, terminal_id=terminal_id, hardware_model=model, region=SHAANXI
    )
