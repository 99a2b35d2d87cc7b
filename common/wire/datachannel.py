"""Data-channel messages between teller and terminal (JSON text, each at most 16 KiB): pure.

Larger messages (a document photo) travel as ``chunk`` messages carrying base64 slices of
the original JSON text; ``Reassembler`` puts them back together and hands out the original
message once every part arrived. Teller → terminal: ``screen``, ``form``, ``capture``,
``sign``; terminal → teller: ``answer``, ``signature``, ``document``.
"""

from __future__ import annotations

import base64
import math
import secrets
from dataclasses import dataclass, field
from typing import Any

import orjson

from common.errors import WireError

MAX_TEXT = 16 * 1024
#: Base64 bytes per chunk: the chunk's JSON wrapper must still fit in MAX_TEXT.
CHUNK_DATA = 12 * 1024
TELLER_TYPES = frozenset({"screen", "form", "capture", "sign"})
TERMINAL_TYPES = frozenset({"answer", "signature", "document"})
FIELD_KINDS = frozenset({"confirm", "choice", "text"})
MAX_PENDING = 8  # partial messages kept at once; a peer that never finishes cannot grow us


class BadChannelMessage(WireError):
    """Data-channel text that is not a message of the contract."""


def encode(msg: dict[str, Any], chunk_id: str | None = None) -> list[str]:
    """The texts to send for one message: itself, or its chunks when it is too large.

    ``chunk_id`` names the chunks (random when not given): tests pass one to get the same
    texts every time, as ``encode(message, chunkId)`` in teller-data.js does."""
    text = orjson.dumps(msg).decode()
    if len(text.encode()) <= MAX_TEXT:
        return [text]
    data = base64.b64encode(text.encode()).decode()
    count = math.ceil(len(data) / CHUNK_DATA)
    cid = chunk_id or secrets.token_hex(8)
    return [
        orjson.dumps(
            {
                "type": "chunk",
                "id": cid,
                "index": i,
                "count": count,
                "data": data[i * CHUNK_DATA : (i + 1) * CHUNK_DATA],
            }
        ).decode()
        for i in range(count)
    ]


def parse(text: str | bytes, known: frozenset[str]) -> dict[str, Any]:
    """One whole (not chunked) message whose type is in ``known``."""
    try:
        msg = orjson.loads(text)
    except orjson.JSONDecodeError as err:
        raise BadChannelMessage(f"not JSON: {err}") from None
    if not isinstance(msg, dict) or msg.get("type") not in known:
        raise BadChannelMessage(f"unexpected message {str(msg)[:80]!r}")
    if msg["type"] == "form":
        check_form(msg)
    return msg


def check_form(msg: dict[str, Any]) -> None:
    fields = msg.get("fields")
    if not isinstance(msg.get("form_id"), str) or not isinstance(fields, list):
        raise BadChannelMessage("a form needs form_id and a list of fields")
    for f in fields:
        if not isinstance(f, dict) or not isinstance(f.get("name"), str):
            raise BadChannelMessage("every field needs a name")
        if f.get("kind") not in FIELD_KINDS:
            raise BadChannelMessage(f"unknown field kind {f.get('kind')!r}")
        if f["kind"] == "choice" and not (isinstance(f.get("options"), list) and f["options"]):
            raise BadChannelMessage(f"choice field {f['name']!r} without options")


@dataclass
class Reassembler:
    """Collects chunks; ``feed(text)`` returns a whole message's text when one completes."""

    parts: dict[str, dict[int, str]] = field(default_factory=dict)

    def feed(self, text: str | bytes) -> str | None:
        try:
            head = orjson.loads(text)
        except orjson.JSONDecodeError as err:
            raise BadChannelMessage(f"not JSON: {err}") from None
        if not isinstance(head, dict) or head.get("type") != "chunk":
            return text.decode() if isinstance(text, bytes) else text
        cid, index, count, data = (head.get(k) for k in ("id", "index", "count", "data"))
        if not (
            isinstance(cid, str)
            and isinstance(index, int)
            and isinstance(count, int)
            and isinstance(data, str)
            and 0 <= index < count <= 10_000
        ):
            raise BadChannelMessage("malformed chunk")
        if cid not in self.parts and len(self.parts) >= MAX_PENDING:
            self.parts.pop(next(iter(self.parts)))  # drop the oldest unfinished message
        got = self.parts.setdefault(cid, {})
        got[index] = data
        if len(got) < count:
            return None
        del self.parts[cid]
        try:
            return base64.b64decode("".join(got[i] for i in range(count))).decode()
        except (KeyError, ValueError) as err:
            raise BadChannelMessage(f"chunks do not make a message: {err}") from None


# -- what the terminal sends ------------------------------------------------------------


def answer(form_id: str, values: dict[str, Any]) -> dict[str, Any]:
    return {"type": "answer", "form_id": form_id, "values": values}


def signature(
    form_id: str, width: int, height: int, strokes: list[list[list[float]]]
) -> dict[str, Any]:
    for stroke in strokes:
        if not all(isinstance(p, list | tuple) and len(p) == 3 for p in stroke):
            raise BadChannelMessage("a stroke is a list of [x, y, t_ms] points")
    return {
        "type": "signature",
        "form_id": form_id,
        "width": width,
        "height": height,
        "strokes": strokes,
    }


def document(kind: str, jpeg: bytes) -> dict[str, Any]:
    """A photo for the teller: a camera JPEG, or the ID card's decoded photo (``id_photo``:
    JPEG or PNG, as the vendor's WLT decoder gives it)."""
    return {
        "type": "document",
        "kind": kind,
        "mime": "image/png" if jpeg.startswith(b"\x89PNG\r\n\x1a\n") else "image/jpeg",
        "data_b64": base64.b64encode(jpeg).decode(),
    }
