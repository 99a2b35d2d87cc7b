"""Issue 17: a call recorded on a media host reaches the archiver on another host without a
shared folder: ``cuntong recordings serve`` (a real process, with the server certificate
``cuntong deploy render`` issued for the media host) serves Janus's folder read-only over
mutual TLS, and the real archiver fetches the room into its own staging folder (with the
API host's recordings certificate, issued by the render's CA as the running API would) and
archives it. Refused: no client certificate, another CA's, a cloud certificate that is not
a recordings one; ``..`` and other names outside the room; writes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import shutil
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cloud.media.archive import Archiver
from cloud.media.errors import RecordingError
from cloud.media.nodes import Node
from cloud.media.recfetch import RecordingSource, fetch_room
from cloud.media.recording import RecordingResult
from cloud.media.recserve import RECORDINGS_SUFFIX
from common import procs
from cuntong.deploy import render_inventory
from cuntong.servers.janus import Janus
from janus_client.janus import JanusAdmin
from janus_client.videoroom import RoomSpec, VideoRoom
from provisioning import ca as ca_lib
from provisioning.device import client_ssl_context
from provisioning.files import ensure_private_dir, write_private
from provisioning.wiring import service_tls_context
from tests.teller.peers import CALL_TOKENS, RECORDED_STREAMS, call_sessions, publish

HEADER = Path(__file__).resolve().parents[1] / "fixtures" / "teller" / "audio-opus.mjr-header"
ROOM = "sess-remote-1"
CALL_SECONDS = 2.0
INVENTORY = """
[deployment]
prefix = "/opt/cuntong"
db_url = "postgres://cuntong@127.0.0.1:5432/cuntong"

[[hosts]]
name = "cloud-1"
address = "127.0.0.2"
roles = ["api", "mosquitto", "victoria-metrics"]

[[hosts]]
name = "media-1"
address = "127.0.0.1"
roles = ["janus"]
"""


@pytest.fixture
def rendered(tmp_path: Path) -> Path:
    inventory = tmp_path / "inventory.toml"
    inventory.write_text(INVENTORY)
    render_inventory(inventory, tmp_path / "out")
    return tmp_path / "out"


@pytest.fixture
def served(rendered: Path, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The media host's recordings server as the rendered unit runs it: (URL, folder)."""
    rec_dir = tmp_path / "media" / "rec"
    rec_dir.mkdir(parents=True)
    port = procs.free_port()
    tls = rendered / "media-1/var/lib/cuntong/recordings/tls"
    argv = [sys.executable, "-m", "cuntong", "recordings", "serve", "--dir", str(rec_dir),
            "--host", "127.0.0.1", "--port", str(port), "--tls", str(tls)]  # fmt: skip
    proc = procs.start(argv, tmp_path / "recordings.log")
    try:
        procs.wait_for_port(port, proc=proc, timeout=30)
        yield f"https://127.0.0.1:{port}", rec_dir
    finally:
        procs.stop(proc)


def _cloud_tls(rendered: Path, suffix: str) -> ssl.SSLContext:
    """The API host's client context for ``api-cloud-1<suffix>``, issued by the render's CA
    the way the running API issues it (``Security.mqtt_tls``)."""
    state = rendered / "cloud-1/var/lib/cuntong/api"
    return service_tls_context(state, "api-cloud-1" + suffix, dt.datetime.now(dt.UTC))


async def _record_call(janus: Janus, rec_dir: Path) -> None:
    """A real call on Janus: customer and teller publish tone and frames, then hang up."""
    async with JanusAdmin(janus.admin_url, janus.cfg.admin_secret) as admin:
        for token in CALL_TOKENS:
            await admin.add_token(token)
        async with call_sessions(janus.url) as (control_session, cust_session, tel_session):
            control = await VideoRoom.attach(control_session)
            spec = RoomSpec(ROOM, record=True, rec_dir=str(rec_dir))
            await control.create_room(spec, janus.cfg.room_admin_key)
            peers = []
            for session, feed in ((cust_session, "customer"), (tel_session, "teller")):
                handle = await VideoRoom.attach(session)
                pc, _ = await publish(handle, ROOM, feed)
                peers.append(pc)
                up = await session.next_event(handle.handle_id, wait=15)
                while up.kind != "webrtcup":
                    up = await session.next_event(handle.handle_id, wait=15)
            await asyncio.sleep(CALL_SECONDS)
            for pc in peers:
                await pc.close()
            await control.destroy_room(ROOM)


async def test_recording_fetched_over_mtls_and_archived(
    janus: Janus,
    served: tuple[str, Path],
    rendered: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, media_dir = served
    await _record_call(janus, media_dir)
    originals = {p.name: p.read_bytes() for p in media_dir.glob(f"{ROOM}-*.mjr")}
    assert len(originals) >= 4, sorted(originals)  # audio and video of both feeds

    staging, out_dir = tmp_path / "api" / "staging", tmp_path / "api" / "archive"
    done: dict[str, RecordingResult] = {}
    failed: dict[str, RecordingError] = {}

    async def on_done(room: str, result: RecordingResult) -> None:
        done[room] = result

    async def on_error(room: str, err: RecordingError) -> None:
        failed[room] = err

    def source(base: str) -> RecordingSource:
        return RecordingSource(base, lambda: _cloud_tls(rendered, RECORDINGS_SUFFIX))

    node = Node("media-1", janus.url, janus.admin_url, 10)
    # The media host unreachable: logged with the room, retried, then reported; nothing
    # staged is left behind.
    dead = f"https://127.0.0.1:{procs.free_port()}"
    archiver = Archiver(lambda n: staging, out_dir, on_done, on_error,
                        source_of=lambda n: source(dead), retry_delays=(0.05, 0.05))  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="cuntong.cloud.media.archive"):
        assert await archiver.archive(ROOM, staging, source(dead)) is None
    assert ROOM in str(failed.pop(ROOM))
    retries = [r for r in caplog.records if ROOM in r.getMessage() and "attempt" in r.getMessage()]
    assert len(retries) == 2
    assert not list(staging.glob("*")) and not done

    # Reachable: the desk's hook queues the room, the worker fetches and archives it.
    archiver.source_of = lambda n: source(url)
    worker = asyncio.create_task(archiver.run())
    await archiver.after_call(ROOM, node)
    await asyncio.wait_for(archiver.queue.join(), 60)
    worker.cancel()
    assert not failed, failed
    result = done[ROOM]
    assert result.path == out_dir / f"{ROOM}.mkv"
    assert [(s.title, s.kind, s.codec) for s in result.streams] == RECORDED_STREAMS
    assert all(s.seconds >= 1.0 for s in result.streams)
    assert result.sha256 == hashlib.sha256(result.path.read_bytes()).hexdigest()
    # The staged copies are gone; the media host still holds every file, unchanged.
    assert list(staging.iterdir()) == []
    assert {p.name: p.read_bytes() for p in media_dir.glob(f"{ROOM}-*.mjr")} == originals


async def test_refusals(served: tuple[str, Path], rendered: Path, tmp_path: Path) -> None:
    url, media_dir = served
    header = HEADER
    shutil.copy(header, media_dir / f"{ROOM}-customer-audio-0.mjr")
    shutil.copy(header, media_dir / "other-customer-audio-0.mjr")
    outside = media_dir.parent / f"{ROOM}-customer-audio-7.mjr"
    outside.write_bytes(b"not for the cloud")
    (media_dir / f"{ROOM}-customer-audio-8.mjr").symlink_to(outside)
    good = _cloud_tls(rendered, RECORDINGS_SUFFIX)
    async with httpx.AsyncClient(verify=good, timeout=20) as client:
        listing = (await client.get(f"{url}/rooms/{ROOM}/")).json()
        # Only this room's regular files: not another room's, not the symlink.
        assert listing["files"] == [
            {"name": f"{ROOM}-customer-audio-0.mjr", "size": header.stat().st_size}
        ]
        assert (await client.get(f"{url}/rooms/{ROOM}/{ROOM}-customer-audio-0.mjr")).content == (
            header.read_bytes()
        )
        for path in (
            f"/rooms/{ROOM}/{ROOM}-customer-audio-8.mjr",  # the symlink out
            f"/rooms/{ROOM}/..%2F{ROOM}-customer-audio-7.mjr",
            f"/rooms/{ROOM}/other-customer-audio-0.mjr",  # another room's file
            "/rooms/..%2F..%2Fetc/",
            f"/rooms/{ROOM}/janus.jcfg",
            "/etc/passwd",
        ):
            reply = await client.get(url + path)
            assert reply.status_code == 404, (path, reply.status_code)
        deleted = await client.delete(f"{url}/rooms/{ROOM}/{ROOM}-customer-audio-0.mjr")
        assert deleted.status_code == 405
    assert (media_dir / f"{ROOM}-customer-audio-0.mjr").exists()
    # A raw "../" that no client library would normalise away.
    assert _raw_get(url, f"/rooms/{ROOM}/../../{outside.name}", good).startswith(b"HTTP/1.1 404")
    assert _raw_get(url, f"/rooms/../{outside.name}", good).startswith(b"HTTP/1.1 404")

    # Same CA, but a cloud broker link's certificate, not a recordings one: 403.
    async with httpx.AsyncClient(verify=_cloud_tls(rendered, ""), timeout=20) as client:
        assert (await client.get(f"{url}/rooms/{ROOM}/")).status_code == 403
    # No client certificate, or one from another CA: the TLS handshake is refused.
    ca_pem = rendered / "cloud-1/var/lib/cuntong/api/ca/root.pem"
    bare = ssl.create_default_context(cafile=str(ca_pem))
    other = ca_lib.load_or_create(tmp_path / "other", dt.datetime.now(dt.UTC))
    key = ca_lib.new_key()
    issued = other.issue_service(key.public_key(), "api-cloud-1" + RECORDINGS_SUFFIX,
                                 dt.datetime.now(dt.UTC))  # fmt: skip
    folder = ensure_private_dir(tmp_path / "stranger")
    write_private(folder / "key.pem", ca_lib.key_pem(key))
    write_private(folder / "cert.pem", issued.chain_pem)
    stranger = client_ssl_context(ca_pem, folder / "cert.pem", folder / "key.pem")
    for ctx in (bare, stranger):
        async with httpx.AsyncClient(verify=ctx, timeout=20) as client:
            # httpcore lets the server's TLS alert through as ssl.SSLError, unwrapped.
            with pytest.raises((httpx.TransportError, ssl.SSLError)):
                await client.get(f"{url}/rooms/{ROOM}/")
    # The archiver's fetch turns every refusal into a RecordingError naming the room.
    for ctx, why in ((_cloud_tls(rendered, ""), "403"), (bare, "fetching from")):
        with pytest.raises(RecordingError, match=why) as refused:
            await fetch_room(RecordingSource(url, lambda c=ctx: c), ROOM, tmp_path / "staged")
        assert ROOM in str(refused.value)
    assert list((tmp_path / "staged").iterdir()) == []


def _raw_get(url: str, path: str, ctx: ssl.SSLContext) -> bytes:
    host, port = url.removeprefix("https://").split(":")
    with (
        socket.create_connection((host, int(port)), timeout=20) as raw,
        ctx.wrap_socket(raw, server_hostname=host) as tls,
    ):
        tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        reply = b""
        while chunk := tls.recv(4096):
            reply += chunk
    return reply


def test_serve_says_what_is_missing(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "cuntong", "recordings", "serve", "--dir", str(tmp_path / "no"),
            "--host", "127.0.0.1", "--port", "0", "--tls", str(tmp_path)]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and "recordings folder" in done.stderr and "no" in done.stderr
