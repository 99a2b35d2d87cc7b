"""The media host's recordings, read-only over HTTPS with mutual TLS: how the archiver on
an API host gets a call's ``.mjr`` files without a shared filesystem.

Janus writes each call's recordings into its ``rec_dir`` on the media host. This server
(``cuntong recordings serve``, rendered by ``cuntong deploy render`` as
``cuntong-recordings.service`` beside Janus) lets the cloud read them:

- ``GET /rooms/<room>/`` — JSON ``{"room": ..., "files": [{"name", "size"}, ...]}``: the
  ``.mjr`` files of that room (named as ``record_base`` says), nothing else;
- ``GET /rooms/<room>/<name>`` — one of those files' bytes.

Nothing else is answered (other paths 404, other methods 405); names are checked against
a strict pattern and must be a regular file directly in the folder (no ``..``, no ``/``, no
symbolic link), so no path leaves it. TLS 1.2+ with a client certificate from the
deployment's CA is required, and the certificate's CN must be a cloud service's recordings
identity (``svc.<instance>-recordings``, ``RECORDINGS_SUFFIX``): a terminal's certificate,
from the same CA, or another cloud link's is refused with 403. The server never writes or
deletes (its user only needs to read Janus's folder: the render gives it Janus's group).

``room_files``/``room_file``/``allowed_peer`` are the pure core; ``serve`` the stdlib shell.
"""

from __future__ import annotations

import http.server
import json
import logging
import os
import re
import ssl
import stat
import threading
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cloud.media.errors import RecordingError
from janus_client.videoroom import record_base

log = logging.getLogger("cuntong.cloud.media.recserve")

#: What a cloud process's recordings certificate adds to its service instance.
RECORDINGS_SUFFIX: Final = "-recordings"
#: The certificate CN prefix of cloud services (``provisioning.ca.SERVICE_PREFIX``).
SERVICE_PREFIX: Final = "svc."
ROOM_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,200}-(audio|video|data)-\d{1,3}\.mjr")
CHUNK: Final = 1 << 16


def valid_room(room: str) -> bool:
    return ROOM_RE.fullmatch(room) is not None


def valid_name(room: str, name: str) -> bool:
    """A recording file name of ``room`` (not of ``room-x``: the feed follows the dash)."""
    return NAME_RE.fullmatch(name) is not None and name.startswith(record_base(room, ""))


@dataclass(frozen=True, slots=True)
class RoomFile:
    name: str
    size: int


def room_file(rec_dir: Path, room: str, name: str) -> Path | None:
    """The file ``name`` of ``room`` in ``rec_dir``, or None when the name is not one of
    its recordings or no such regular file is there (a symlink counts as not there)."""
    if not (valid_room(room) and valid_name(room, name)):
        return None
    path = rec_dir / name
    try:
        info = path.lstat()
    except OSError:
        return None
    return path if stat.S_ISREG(info.st_mode) else None


def room_files(rec_dir: Path, room: str) -> list[RoomFile]:
    """Every recording file of ``room`` in ``rec_dir``, by name."""
    found = []
    with os.scandir(rec_dir) as entries:
        for entry in entries:
            if valid_name(room, entry.name) and entry.is_file(follow_symlinks=False):
                found.append(RoomFile(entry.name, entry.stat(follow_symlinks=False).st_size))
    return sorted(found, key=lambda f: f.name)


def allowed_peer(cert: dict[str, Any] | None) -> str | None:
    """The CN of a peer certificate (as ``SSLSocket.getpeercert`` gives it) when it is a
    cloud recordings identity, else None."""
    if not cert:
        return None
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                ok = value.startswith(SERVICE_PREFIX) and value.endswith(RECORDINGS_SUFFIX)
                return value if ok else None
    return None


def server_context(cert: Path, key: Path, ca: Path) -> ssl.SSLContext:
    """TLS 1.2+, a client certificate chaining to ``ca`` required."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert), str(key))
    ctx.load_verify_locations(cafile=str(ca))
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), fmt % args)

    def _reply(self, status: int, body: bytes, kind: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, detail: str) -> None:
        self._reply(status, json.dumps({"detail": detail}).encode())

    def _refuse_method(self) -> None:
        self._error(405, "read-only: GET only")

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse_method

    def do_GET(self) -> None:
        peer = allowed_peer(self.connection.getpeercert())  # type: ignore[attr-defined]
        if peer is None:
            self._error(403, "only a cloud recordings certificate may read recordings")
            return
        raw = urllib.parse.urlsplit(self.path).path
        parts = raw.split("/")
        # "/rooms/<room>/" or "/rooms/<room>/<name>"; anything else (%2F, "..") is not found.
        if len(parts) != 4 or parts[:2] != ["", "rooms"] or not valid_room(parts[2]):
            self._error(404, "not a room's recordings path")
            return
        room, name, rec_dir = parts[2], parts[3], self.server.rec_dir
        if name == "":
            files = room_files(rec_dir, room)
            listing = {"room": room, "files": [{"name": f.name, "size": f.size} for f in files]}
            self._reply(200, json.dumps(listing).encode())
            return
        path = room_file(rec_dir, room, name)
        if path is None:
            self._error(404, f"no recording {name!r} of room {room!r}")
            return
        with path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            left = size
            while left > 0 and (chunk := f.read(min(CHUNK, left))):
                self.wfile.write(chunk)
                left -= len(chunk)
        log.info("%s read %s (%d bytes)", peer, name, size)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], rec_dir: Path, ctx: ssl.SSLContext) -> None:
        super().__init__(address, _Handler)
        self.rec_dir = rec_dir
        self.ctx = ctx

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = self.socket.accept()
        sock.settimeout(30)
        return self.ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            request.do_handshake()  # in the worker thread: a slow client holds no one up
        except (ssl.SSLError, OSError) as err:
            log.warning("%s: TLS refused: %s", client_address[0], err)
            return
        super().finish_request(request, client_address)


@dataclass
class RecordingsServer:
    """A running server (``serve``); ``stop`` ends it."""

    server: _Server
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


def serve(rec_dir: Path, host: str, port: int, cert: Path, key: Path, ca: Path) -> RecordingsServer:
    """Start serving ``rec_dir`` in a background thread (``port`` 0: any free port)."""
    if not rec_dir.is_dir():
        raise RecordingError(f"recordings folder {rec_dir} does not exist")
    for path in (cert, key, ca):
        if not path.is_file():
            raise RecordingError(f"TLS file {path} does not exist")
    server = _Server((host, port), rec_dir, server_context(cert, key, ca))
    thread = threading.Thread(target=server.serve_forever, name="recordings", daemon=True)
    thread.start()
    log.info("serving recordings of %s on https://%s:%d", rec_dir, host, server.server_address[1])
    return RecordingsServer(server, thread)
