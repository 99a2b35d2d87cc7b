"""What a simulated terminal answers on the data channel, built from the terminal's own code.

``common.wire.datachannel`` (the message codec and chunking), ``edge.teller.customer`` (forms
answered as the contract says: confirm = true, first option, text "模拟"; synthetic
signature strokes) and ``edge.teller.jpeg`` (a synthetic document photo): the teller tests
speak exactly what terminals speak.
"""

from __future__ import annotations

import random
from typing import Any

from common.wire import datachannel as channel
from edge.teller.customer import auto_answer, synthetic_strokes
from edge.teller.jpeg import synthetic_document

Message = dict[str, Any]
PAD = (600, 200)  # the signature pad, as the terminal's screen has it


def reply(message: Message, rng: random.Random) -> list[Message]:
    """The terminal's answers to one teller message (none to screen sync)."""
    kind = message["type"]
    if kind == "form":
        return [channel.answer(message["form_id"], auto_answer(message))]
    if kind == "sign":
        return [channel.signature(message["form_id"], *PAD, synthetic_strokes(rng, *PAD))]
    if kind == "capture":
        return [channel.document(message["kind"], synthetic_document(message["kind"]))]
    return []
