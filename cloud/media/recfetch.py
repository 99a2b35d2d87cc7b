"""The archiver's side of ``recserve``: copy one room's ``.mjr`` files from the media host
into a local staging folder, each written atomically and checked against its listed size.

``fetch_room`` is the whole job: list the room, fetch each file to ``.<name>.part`` (0600)
and rename it into place only when its byte count matches the listing and the response's
Content-Length; anything else is a ``RecordingError`` naming the room and the file, and no
partial file is left behind. Files the media host still holds are never deleted from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from cloud.media.errors import RecordingError
from cloud.media.recserve import valid_name, valid_room


@dataclass(frozen=True)
class RecordingSource:
    """Where a node's recordings are read: its server's base URL and the TLS context
    (a fresh one each time: the service certificate renews when due)."""

    url: str
    tls: Callable[[], ssl.SSLContext]
    timeout: float = 60.0


async def fetch_room(
    source: RecordingSource,
    room: str,
    staging: Path,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> list[Path]:
    """Copy ``room``'s recordings from ``source`` into ``staging``; the files written."""
    if not valid_room(room):
        raise RecordingError(f"room {room!r}: not a valid room name")
    await asyncio.to_thread(staging.mkdir, parents=True, exist_ok=True)
    base = source.url.rstrip("/")
    written: list[Path] = []
    try:
        async with httpx.AsyncClient(
            verify=source.tls(), timeout=source.timeout, transport=transport
        ) as client:
            listing = await client.get(f"{base}/rooms/{room}/")
            if listing.status_code != 200:
                raise RecordingError(
                    f"room {room}: {base} listed with {listing.status_code}: {listing.text[:200]}"
                )
            files = _listing(room, listing.json())
            for name, size in files:
                written.append(await _fetch_one(client, f"{base}/rooms/{room}/{name}", staging,
                                                name, size, room))  # fmt: skip
    except (httpx.HTTPError, OSError) as err:  # OSError: ssl.SSLError escapes httpcore
        for path in written:
            path.unlink(missing_ok=True)
        raise RecordingError(f"room {room}: fetching from {base}: {err!r}") from err
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return written


def _listing(room: str, body: object) -> list[tuple[str, int]]:
    files = body.get("files") if isinstance(body, dict) else None
    if not isinstance(files, list):
        raise RecordingError(f"room {room}: the recordings listing has no 'files' list")
    out = []
    for entry in files:
        name = entry.get("name") if isinstance(entry, dict) else None
        size = entry.get("size") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not valid_name(room, name):
            raise RecordingError(f"room {room}: the listing names {name!r}, not a recording")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise RecordingError(f"room {room}: {name}: listed size {size!r} is not a size")
        out.append((name, size))
    return out


async def _fetch_one(
    client: httpx.AsyncClient, url: str, staging: Path, name: str, size: int, room: str
) -> Path:
    final, part = staging / name, staging / f".{name}.part"
    got = 0
    try:
        async with client.stream("GET", url) as reply:
            if reply.status_code != 200:
                await reply.aread()
                raise RecordingError(f"room {room}: {name}: {reply.status_code} {reply.text[:200]}")
            declared = reply.headers.get("content-length")
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as out:
                async for chunk in reply.aiter_bytes():
                    out.write(chunk)
                    got += len(chunk)
                out.flush()
                os.fsync(out.fileno())
        # Janus had closed the file (the room is gone); a size that moved is a short read.
        if got != size or (declared is not None and int(declared) != got):
            raise RecordingError(
                f"room {room}: {name}: got {got} bytes, listed {size}, sent as {declared}"
            )
        os.replace(part, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
    return final
