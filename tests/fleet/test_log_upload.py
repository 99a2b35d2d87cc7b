"""collect_logs that acts: a real enrolled agent uploads its redacted logs over HTTPS in
signed chunks, through a TCP relay that cuts the link mid-upload; the upload resumes, the
cloud checks the whole digest and keeps the bundle sealed; only a fleet operator downloads
it, audited. Forged, misattributed and replayed requests are refused by name."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import secrets
import sqlite3
import ssl
import stat
import tarfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cloud.security import broker_services
from common import procs
from common.wire import log_upload as wire
from cuntong.servers.mosquitto import Broker
from cuntong.servers.victoria import VictoriaMetrics
from edge import logs
from edge.agent import Agent
from edge.identity import SecureLink
from fleet.sender import INSTANCE_SUFFIX
from tests.helpers import CloudProcess, create_account, enrolled_link, eventually, secured_cloud
from tests.integration.agents import agent_settings, new_id

ID_NUMBER = "11010119900307777X"
CARD = "6222021234567890123"
NAME = "张秀英"
CHUNK = 8 * 1024


class Relay:
    """A TCP relay in front of the terminals' HTTPS listener (TLS passes through it). It can
    cut the first connection that has carried ``cut_after`` bytes upstream, and then refuse
    every new connection while ``blocked``."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.cut_after: int | None = None
        self.blocked = False
        self.cuts = self.connections = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.blocked:
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        carried = 0

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, up: bool) -> None:
            nonlocal carried
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(4096):
                    if up:
                        carried += len(data)
                        if self.cut_after is not None and carried > self.cut_after:
                            self.cut_after, self.blocked = None, True
                            self.cuts += 1
                            break  # the link drops mid-request
                    dst.write(data)
                    await dst.drain()
            for w in (writer, up_writer):
                w.close()

        await asyncio.gather(pump(reader, up_writer, True), pump(up_reader, writer, False))

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


@pytest.fixture
def cloud_tls(
    tmp_path: Path, victoria: VictoriaMetrics
) -> Iterator[tuple[Path, Broker, CloudProcess, int]]:
    services = broker_services("api")
    assert f"api{INSTANCE_SUFFIX}" in services
    port = procs.free_port()
    with secured_cloud(
        tmp_path, victoria.url, services, CUNTONG_CLOUD_TERMINAL_API_PORT=str(port)
    ) as (pki, broker, cloud):
        yield pki, broker, cloud, port


@pytest.fixture
async def relay(cloud_tls: tuple[Path, Broker, CloudProcess, int]) -> AsyncIterator[Relay]:
    r = Relay(cloud_tls[3])
    await r.start()
    try:
        yield r
    finally:
        r.close()


def _write_logs(log_dir: Path) -> bytes:
    """Log through the agent's own rotating handler, customer data included; and one file
    "from an older agent" that was written without redaction. Returns a marker the bundle
    must carry."""
    handler = logs.install(log_dir, max_bytes=64 * 1024, backups=5)
    marker = secrets.token_hex(8)
    log = logging.getLogger("cuntong.test-logs")
    log.setLevel(logging.INFO)
    try:
        for i in range(1500):  # random text: the bundle stays large after compression
            log.info(
                "%s line %d %s customer name=%s id=%s",
                marker,
                i,
                secrets.token_hex(40),
                NAME,
                ID_NUMBER,
            )
    finally:
        logging.getLogger("cuntong").removeHandler(handler)
        handler.close()
    old = log_dir / f"{logs.LOG_NAME}.5"
    old.write_text(f"old agent: card {CARD} id {ID_NUMBER} 姓名：{NAME}\n", encoding="utf-8")
    return marker.encode()


async def _command(http: httpx.AsyncClient, cid: str) -> dict[str, Any] | None:
    c = (await http.get(f"/api/v1/fleet/commands/{cid}")).json()
    return c if c["state"] not in ("queued", "sent") else None


def _chunk_request(
    link: SecureLink, upload_id: str, tid: str, index: int, data: bytes
) -> dict[str, Any]:
    signature = wire.sign(
        link.identity.key(), wire.chunk_message(upload_id, tid, index, wire.sha256(data))
    )
    return {"content": data, "headers": {wire.SIGNATURE_HEADER: signature}}


async def test_logs_upload_in_signed_chunks_resume_after_a_cut_and_reach_only_operators(
    tmp_path: Path, cloud_tls: tuple[Path, Broker, CloudProcess, int], relay: Relay
) -> None:
    pki, _, cloud, tls_port = cloud_tls
    direct = f"https://127.0.0.1:{tls_port}"
    tid, other_tid = new_id("LG"), new_id("LX")
    settings = agent_settings(tmp_path, 1, tid, simulate=False)
    # The terminal's claim points at the relay: every upload byte crosses it.
    link = await enrolled_link(
        cloud.url, settings.state_dir, tid, f"https://127.0.0.1:{relay.port}"
    )
    other = await enrolled_link(cloud.url, tmp_path / other_tid, other_tid, direct)
    marker = _write_logs(settings.state_dir / "logs")
    agent = Agent(settings, link=link)
    run = asyncio.create_task(agent.run())
    tls = link.identity.ca_path.read_text()
    terminal_http = httpx.AsyncClient(
        base_url=direct, verify=ssl.create_default_context(cadata=tls), timeout=10
    )
    try:
        await asyncio.wait_for(agent.connected.wait(), 15)
        relay.cut_after = 3 * CHUNK + 4096  # inside the third chunk
        async with cloud.client() as http:
            r = await http.post(
                "/api/v1/fleet/commands",
                json={
                    "name": "collect_logs",
                    "terminals": [tid],
                    "args": {"upload": True, "chunk_bytes": CHUNK},
                },
            )
            assert r.status_code in (200, 201), r.text
            cid = r.json()["commands"][0]

            # The link dropped mid-upload and stays down: the upload is open with some chunks.
            kept = settings.state_dir / "data" / "log-uploads" / f"{cid}.tgz"

            async def cut() -> bool:
                return relay.cuts == 1 and kept.exists()

            await eventually(cut, timeout=60)
            bundle = kept.read_bytes()
            assert stat.S_IMODE(kept.stat().st_mode) == 0o600
            manifest = wire.plan(cid, tid, bundle, CHUNK)
            assert len(manifest.chunks) >= 6, len(manifest.chunks)

            # --- refusals, by name, while the upload is open --------------------------
            announce = {
                "manifest": manifest.to_bytes().decode(),
                "signature": wire.sign(link.identity.key(), wire.manifest_message(manifest)),
                "certificate_pem": link.identity.cert_path.read_text(),
            }
            held = await terminal_http.post(f"/api/v1/fleet/log-uploads/{cid}", json=announce)
            assert held.status_code == 200, held.text
            have = held.json()["have"]
            assert 0 < len(have) < len(manifest.chunks), have  # some arrived before the cut
            missing = next(i for i in range(len(manifest.chunks)) if i not in have)
            piece = wire.chunk(bundle, manifest, missing)

            async def refused(r: httpx.Response, status: int, reason: str) -> None:
                assert r.status_code == status, r.text
                assert r.json()["detail"]["reason"] == reason, r.text

            url = f"/api/v1/fleet/log-uploads/{cid}/chunks/{missing}"
            # A forged chunk: one byte changed under the real chunk's signature.
            real = _chunk_request(link, cid, tid, missing, piece)
            forged = bytes([piece[0] ^ 1]) + piece[1:]
            await refused(
                await terminal_http.put(url, content=forged, headers=real["headers"]),
                401,
                "bad_signature",
            )
            # Signed by another enrolled terminal's key.
            await refused(
                await terminal_http.put(url, **_chunk_request(other, cid, tid, missing, piece)),
                401,
                "bad_signature",
            )
            # A genuine chunk replayed at another place in the upload.
            wrong_place = f"/api/v1/fleet/log-uploads/{cid}/chunks/{have[0]}"
            await refused(await terminal_http.put(wrong_place, **real), 401, "bad_signature")
            # Another terminal announcing this terminal's upload with its own certificate.
            stolen = {
                **announce,
                "signature": wire.sign(other.identity.key(), wire.manifest_message(manifest)),
                "certificate_pem": other.identity.cert_path.read_text(),
            }
            await refused(
                await terminal_http.post(f"/api/v1/fleet/log-uploads/{cid}", json=stolen),
                403,
                "wrong_terminal",
            )
            # Not over HTTPS: the operator listener refuses terminal uploads.
            async with httpx.AsyncClient(base_url=cloud.url, timeout=10) as plain:
                await refused(await plain.put(url, **real), 403, "https_required")
            # An upload nobody asked for (no open collect_logs command with that id).
            stray = wire.plan("nobody-asked", tid, bundle, CHUNK)
            await refused(
                await terminal_http.post(
                    "/api/v1/fleet/log-uploads/nobody-asked",
                    json={
                        **announce,
                        "manifest": stray.to_bytes().decode(),
                        "signature": wire.sign(link.identity.key(), wire.manifest_message(stray)),
                    },
                ),
                409,
                "no_open_command",
            )

            # --- the link comes back: the agent resumes and finishes ------------------
            relay.blocked = False
            done = await eventually(lambda: _command(http, cid), timeout=90)
            assert done["state"] == "succeeded", done
            result = done["result"]
            assert result["drops"] >= 1 and relay.connections >= 2, (result, relay.connections)
            assert result["sha256"] == manifest.sha256 and result["chunks"] == len(manifest.chunks)
            # Resumed, not restarted: the chunks held before the cut were not sent again (at
            # most the one in flight at the cut travels twice).
            assert len(manifest.chunks) <= result["chunks_sent"] <= len(manifest.chunks) + 1
            assert not kept.exists()  # the terminal's copy goes once the cloud holds it

            # A replayed chunk (and announce) after the upload is stored: refused.
            await refused(await terminal_http.put(url, **real), 409, "upload_closed")
            await refused(
                await terminal_http.post(f"/api/v1/fleet/log-uploads/{cid}", json=announce),
                409,
                "upload_closed",
            )

            # --- the operator downloads it; the whole digest and redaction hold ------
            listed = await http.get("/api/v1/fleet/log-uploads", params={"terminal_id": tid})
            assert [u["state"] for u in listed.json()] == ["complete"], listed.text
            got = await http.get(f"/api/v1/fleet/log-uploads/{cid}/bundle")
            assert got.status_code == 200, got.text
            assert wire.sha256(got.content) == manifest.sha256
            with tarfile.open(fileobj=io.BytesIO(got.content)) as tar:
                text = b"".join(
                    f.read() for m in tar.getmembers() if (f := tar.extractfile(m)) is not None
                )
            assert marker in text and b"[ID]" in text and b"[CARD]" in text
            for secret in (ID_NUMBER, CARD, NAME):
                assert secret.encode() not in text, secret

        # Only fleet operators download; an auditor may read the fleet but not the logs.
        db = f"sqlite://{tmp_path / 'cloud.sqlite3'}"
        create_account(db, "auditor-logs", "a-long-password-123", "auditor")
        async with httpx.AsyncClient(base_url=cloud.url, timeout=10) as anon:
            login = await anon.post(
                "/api/v1/auth/login",
                json={"username": "auditor-logs", "password": "a-long-password-123"},
            )
            token = login.json()["token"]
            denied = await anon.get(
                f"/api/v1/fleet/log-uploads/{cid}/bundle",
                headers={"Authorization": f"Bearer {token}"},
            )
            assert denied.status_code == 403, denied.text
        with sqlite3.connect(tmp_path / "cloud.sqlite3") as conn:
            rows = conn.execute(
                "SELECT actor, target FROM audit_entry WHERE action = 'fleet_logs_download'"
            ).fetchall()
        assert len(rows) == 1 and rows[0][1] == tid, rows

        # At rest: every file 0600, and the bundle is sealed (not readable as stored).
        stored = pki / "fleet-logs"
        for f in stored.rglob("*"):
            if f.is_file():
                assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
        sealed = (stored / cid / "bundle.tgz.sealed").read_bytes()
        assert got.content[:64] not in sealed and not list((stored / cid / "chunks").iterdir())
    finally:
        await terminal_http.aclose()
        agent.stop()
        await run
