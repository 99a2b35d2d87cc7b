"""The teller/terminal data-channel protocol as a simulated terminal speaks it (pure).

JSON text messages of at most 16 KiB; a longer one is sent as
``{"type":"chunk","id","index","count","data":<base64 part>}`` and reassembled into the
original text (the browser side is ``cloud/sessions/static/teller-data.js``). ``reply``
is what a simulated terminal answers to each teller message: forms filled in (confirm =
true, first option, text "模拟"), synthetic signature strokes, a synthetic document image.
"""

from __future__ import annotations

import base64
import json
import math
import secrets
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

MAX_MESSAGE = 16 * 1024
CHUNK_CHARS = 12 * 1024
MAX_PARTS = 1400

Message = dict[str, Any]


def encode(message: Message, chunk_id: str | None = None) -> list[str]:
    """One message -> the texts to send: itself, or its chunks when longer than 16 KiB."""
    text = json.dumps(message, ensure_ascii=False, separators=(",", ":"))
    raw = text.encode()
    if len(raw) <= MAX_MESSAGE:
        return [text]
    b64 = base64.b64encode(raw).decode()
    count = math.ceil(len(b64) / CHUNK_CHARS)
    ident = chunk_id or secrets.token_hex(6)
    return [
        json.dumps(
            {
                "type": "chunk",
                "id": ident,
                "index": i,
                "count": count,
                "data": b64[i * CHUNK_CHARS : (i + 1) * CHUNK_CHARS],
            }
        )
        for i in range(count)
    ]


@dataclass
class Reassembler:
    """Texts in, whole messages out (None while a chunked message is incomplete)."""

    partial: dict[str, dict[int, str]] = field(default_factory=dict)

    def push(self, text: str) -> Message | None:
        msg = json.loads(text)  # ValueError on garbage
        if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
            raise ValueError("not a message object with a type")
        if msg["type"] != "chunk":
            return msg
        ident, index, count = msg["id"], msg["index"], msg["count"]
        if not (isinstance(count, int) and 0 < count <= MAX_PARTS and 0 <= index < count):
            raise ValueError("malformed chunk")
        parts = self.partial.setdefault(ident, {})
        parts[index] = msg["data"]
        if len(parts) < count:
            return None
        del self.partial[ident]
        return self.push(base64.b64decode("".join(parts[i] for i in range(count))).decode())


def document_jpeg(kind: str, width: int = 640, height: int = 400) -> bytes:
    """A synthetic card/voucher photo: noisy paper, a frame and some lines (tens of KB)."""
    rng = np.random.default_rng(7)
    img = rng.integers(200, 256, (height, width, 3), dtype=np.uint8)
    cv2.rectangle(img, (20, 20), (width - 20, height - 20), (60, 60, 160), 4)
    for i in range(6):
        y = 80 + i * 45
        cv2.line(img, (60, y), (width - 60 - 40 * i, y), (40, 40, 40), 3)
    cv2.putText(img, kind.upper(), (60, 60), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (20, 20, 120), 3)
    ok, jpeg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return bytes(jpeg)


def signature_strokes(width: int = 480, height: int = 200) -> list[list[list[float]]]:
    """Two strokes: a wave across the pad and an underline, with times in ms."""
    wave = [
        [40 + i * 10, height / 2 + 40 * math.sin(i / 4), i * 16]
        for i in range(int((width - 80) / 10))
    ]
    line = [[60 + i * 20, height - 40, 2000 + i * 16] for i in range(int((width - 120) / 20))]
    return [wave, line]


def reply(message: Message) -> list[Message]:
    """What the simulated terminal answers to a teller message (nothing for screen sync)."""
    kind = message.get("type")
    if kind == "form":
        values: dict[str, Any] = {}
        for f in message.get("fields", []):
            if f.get("kind") == "confirm":
                values[f["name"]] = True
            elif f.get("kind") == "choice":
                values[f["name"]] = (f.get("options") or [None])[0]
            else:
                values[f["name"]] = "模拟"
        return [{"type": "answer", "form_id": message.get("form_id"), "values": values}]
    if kind == "sign":
        return [
            {
                "type": "signature",
                "form_id": message.get("form_id"),
                "width": 480,
                "height": 200,
                "strokes": signature_strokes(),
            }
        ]
    if kind == "capture":
        jpeg = document_jpeg(str(message.get("kind")))
        return [
            {
                "type": "document",
                "kind": message.get("kind"),
                "mime": "image/jpeg",
                "data_b64": base64.b64encode(jpeg).decode(),
            }
        ]
    return []
