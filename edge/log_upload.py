"""The agent's side of a log upload: bundle the logs, then send them in signed chunks.

``bundle`` packs the rotating log files into a gzip'd tar, each file redacted again on the
way in (``edge.redact``; a file written by an older agent may predate redaction), newest
files first until ``max_text_bytes`` of text. The bytes are kept under
``<state>/data/log-uploads/<upload id>.tgz`` (0600; ``wipe`` removes ``data/``), so every
retry of one upload sends the same chunks.

``Uploader.upload`` talks to the cloud's terminal HTTPS listener (the factory claim's
``enrol_url``, trusting only our root CA): it announces the signed manifest with its
certificate, learns which chunks the cloud already holds, sends the others one by one, and
asks the cloud to reassemble. A dropped link (connect, read or write error, a reset) is met
with a backoff and the same steps again: the cloud answers with what it has, so only the
missing chunks travel. A refusal (4xx) ends the upload with the cloud's reason.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import ssl
import tarfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import ec

from common.errors import CuntongError
from common.wire import log_upload as wire
from edge import logs
from edge.identity import SecureLink
from edge.redact import redact

log = logging.getLogger("cuntong.logs")

#: How much log text (before compression) one bundle carries at most.
MAX_TEXT_BYTES = 16 * 1024 * 1024
ROUTE = "/api/v1/fleet/log-uploads"


def bundle(log_dir: Path, max_text_bytes: int = MAX_TEXT_BYTES) -> tuple[bytes, int, bool]:
    """A gzip'd tar of the redacted log files; its text size, and whether files were left
    out to stay within ``max_text_bytes``."""
    out = io.BytesIO()
    total, truncated = 0, False
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for path in logs.files(log_dir):
            text = redact(path.read_text(encoding="utf-8", errors="replace")).encode()
            if total + len(text) > max_text_bytes:
                truncated = True
                break
            info = tarfile.TarInfo(path.name)
            info.size, info.mtime, info.mode = len(text), int(path.stat().st_mtime), 0o600
            tar.addfile(info, io.BytesIO(text))
            total += len(text)
    return out.getvalue(), total, truncated


def kept(folder: Path, upload_id: str, make: Callable[[], bytes]) -> bytes:
    """The bundle kept for ``upload_id``, made (and written 0600) the first time."""
    path = folder / f"{upload_id}.tgz"
    if path.exists():
        return path.read_bytes()
    data = make()
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return data


@dataclass
class Uploader:
    """Sends one bundle to the cloud, resuming across drops (see the module docstring)."""

    base_url: str
    tls: ssl.SSLContext
    terminal_id: str
    key: Callable[[], ec.EllipticCurvePrivateKey]
    certificate_pem: Callable[[], str]
    #: Give up after this long without finishing.
    deadline_s: float = 600.0
    retry_s: float = 1.0
    retry_cap_s: float = 15.0
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    def __post_init__(self) -> None:
        if not self.base_url.startswith("https://"):
            raise ValueError(f"log uploads go over HTTPS only, not {self.base_url!r}")

    async def upload(self, upload_id: str, data: bytes, chunk_size: int) -> dict[str, Any]:
        manifest = wire.plan(upload_id, self.terminal_id, data, chunk_size)
        key = self.key()
        announce = {
            "manifest": manifest.to_bytes().decode(),
            "signature": wire.sign(key, wire.manifest_message(manifest)),
            "certificate_pem": self.certificate_pem(),
        }
        sent = drops = 0
        give_up = time.monotonic() + self.deadline_s
        wait = self.retry_s
        while True:
            try:
                async with httpx.AsyncClient(
                    base_url=self.base_url, verify=self.tls, timeout=30
                ) as http:
                    have = set(
                        _answer(await http.post(f"{ROUTE}/{upload_id}", json=announce))["have"]
                    )
                    for index, digest in enumerate(manifest.chunks):
                        if index in have:
                            continue
                        signature = wire.sign(
                            key, wire.chunk_message(upload_id, self.terminal_id, index, digest)
                        )
                        _answer(
                            await http.put(
                                f"{ROUTE}/{upload_id}/chunks/{index}",
                                content=wire.chunk(data, manifest, index),
                                headers={wire.SIGNATURE_HEADER: signature},
                            )
                        )
                        sent += 1
                    done = _answer(await http.post(f"{ROUTE}/{upload_id}/complete"))
            except (httpx.TransportError, _Unavailable) as err:
                drops += 1
                if time.monotonic() + wait > give_up:
                    raise ValueError(f"log upload gave up after {drops} drops: {err}") from err
                log.warning("log upload %s: link dropped (%s); resuming", upload_id, err)
                await self.sleep(wait)
                wait = min(wait * 2, self.retry_cap_s)
                continue
            return {
                "upload_id": upload_id,
                "bytes": manifest.size,
                "sha256": manifest.sha256,
                "chunks": len(manifest.chunks),
                "chunks_sent": sent,
                "drops": drops,
                "stored": done.get("stored", False),
            }


class _Unavailable(CuntongError):
    """The cloud answered 502-504 (restarting, behind a proxy): worth another try."""


def _answer(r: httpx.Response) -> dict[str, Any]:
    """The JSON answer, or the cloud's refusal as a ValueError naming its reason."""
    if r.status_code in (502, 503, 504):
        raise _Unavailable(f"HTTP {r.status_code}")
    if r.status_code >= 400:
        try:
            detail = r.json().get("detail")
        except ValueError:
            detail = r.text[:200]
        if isinstance(detail, dict):
            detail = f"{detail.get('reason')}: {detail.get('detail', '')}"
        raise ValueError(f"log upload refused ({r.status_code}): {detail}")
    body: dict[str, Any] = r.json()
    return body


def from_link(link: SecureLink | None) -> Callable[[], Uploader] | None:
    """How an enrolled terminal uploads: to its claim's HTTPS address, trusting only our
    root CA, signing with its current key (read at each upload: a renewal changes it).
    None without a claim (development mode, or no HTTPS address to send to)."""
    if link is None or link.claim is None or not link.claim.enrol_url.startswith("https://"):
        return None
    identity, claim = link.identity, link.claim

    def make() -> Uploader:
        return Uploader(
            base_url=claim.enrol_url,
            tls=ssl.create_default_context(cadata=claim.ca_pem),
            terminal_id=link.identity.info()["terminal_id"],
            key=identity.key,
            certificate_pem=lambda: identity.cert_path.read_text(),
        )

    return make
