"""Fixtures: a CA per session, a real mTLS Mosquitto per test, terminals with certificates."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cuntong import procs
from cuntong.servers.mosquitto import Broker
from provisioning import broker as broker_lib
from provisioning import ca as ca_lib
from provisioning.device import client_ssl_context, new_csr
from provisioning.files import write_private


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


@pytest.fixture
def mtls_broker(
    tmp_path: Path, ca: ca_lib.CertificateAuthority, now: dt.datetime
) -> Iterator[MtlsBroker]:
    files = broker_lib.prepare(ca, tmp_path / "broker-tls", ["127.0.0.1", "localhost"], now)
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
