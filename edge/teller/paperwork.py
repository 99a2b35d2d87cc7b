"""The terminal's side of the data channel: screen text, forms, signatures, document photos.

The teller pushes ``screen`` (what the customer screen shows now), ``form`` (questions with
big answer buttons), ``sign`` (open the signature pad) and ``capture`` (photograph an ID card
or voucher with the terminal camera). The customer screen shows the pending form or pad and
calls ``answer`` / ``signature``; a simulated terminal answers by itself at once. Photos go
back as one ``document`` message, split into chunks by ``channel.encode``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from common.wire import datachannel as channel
from edge.teller.customer import auto_answer, synthetic_strokes

log = logging.getLogger("cuntong.teller.paperwork")

Capture = Callable[[str], Awaitable[bytes | None]]  # kind -> JPEG bytes (None: no camera)
PAD = (600, 200)  # signature pad size in screen pixels


@dataclass
class Paperwork:
    send_text: Callable[[str], bool]
    capture: Capture
    simulate: bool = False
    rng: random.Random = field(default_factory=random.Random)
    screen: dict[str, Any] | None = None
    form: dict[str, Any] | None = None
    sign: dict[str, Any] | None = None
    sent: dict[str, int] = field(default_factory=dict)
    refused: int = 0
    #: What the customer delivered in this call, by its digest (the device steps
    #: ``e_signature`` and ``voucher_capture`` sign these): "signature", "voucher", "id_card".
    delivered: dict[str, dict[str, Any]] = field(default_factory=dict)
    _reassembler: channel.Reassembler = field(default_factory=channel.Reassembler)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def reset(self) -> None:
        """A new call starts with a clean screen."""
        self.screen = self.form = self.sign = None
        self.delivered = {}

    def on_text(self, text: str) -> None:
        """One data-channel text from the teller (maybe a chunk)."""
        try:
            whole = self._reassembler.feed(text)
            if whole is None:
                return
            msg = channel.parse(whole, channel.TELLER_TYPES)
        except channel.BadChannelMessage as err:
            self.refused += 1
            log.warning("data channel: %s", err)
            return
        kind = msg["type"]
        if kind == "screen":
            self.screen = {"title": str(msg.get("title", "")), "text": str(msg.get("text", ""))}
        elif kind == "form":
            self.form = msg
            if self.simulate:
                self.answer(msg["form_id"], auto_answer(msg))
        elif kind == "sign":
            self.sign = {"form_id": str(msg.get("form_id", ""))}
            if self.simulate:
                self.signature(self.sign["form_id"], *PAD, synthetic_strokes(self.rng, *PAD))
        elif kind == "capture":
            task = asyncio.create_task(self._capture(str(msg.get("kind", "id_card"))))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _send(self, msg: dict[str, Any]) -> bool:
        parts = channel.encode(msg)
        ok = all(self.send_text(part) for part in parts)
        if ok:
            self.sent[msg["type"]] = self.sent.get(msg["type"], 0) + 1
        else:
            log.warning("data channel closed: %s not sent", msg["type"])
        return ok

    def answer(self, form_id: str, values: dict[str, Any]) -> bool:
        if self.form is None or self.form.get("form_id") != form_id:
            raise ValueError(f"no open form {form_id!r}")
        self.form = None
        return self._send(channel.answer(form_id, values))

    def signature(
        self, form_id: str, width: int, height: int, strokes: list[list[list[float]]]
    ) -> bool:
        if self.sign is None or self.sign["form_id"] != form_id:
            raise ValueError(f"no signature asked for {form_id!r}")
        self.sign = None
        sent = self._send(channel.signature(form_id, width, height, strokes))
        if sent:
            drawn = json.dumps([width, height, strokes], separators=(",", ":")).encode()
            self.delivered["signature"] = {
                "form_id": form_id,
                "strokes": len(strokes),
                "sha256": hashlib.sha256(drawn).hexdigest(),
            }
        return sent

    async def _capture(self, kind: str) -> None:
        jpeg = await self.capture(kind)
        if jpeg is None:
            log.warning("capture of %s asked, but there is no camera frame", kind)
            return
        if self._send(channel.document(kind, jpeg)):
            self.delivered[kind] = {"bytes": len(jpeg), "sha256": hashlib.sha256(jpeg).hexdigest()}
