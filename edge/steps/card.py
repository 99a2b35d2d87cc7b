"""The ``card_read`` and ``pin_entry`` steps: the bank card proves it is there, the PIN
leaves the pad only encrypted.

``card_read``: the agent reads the card through the real PC/SC adapter (SELECT, GPO, READ
RECORD) and asks it for an ARQC (GENERATE AC) whose unpredictable number is the desk's step
nonce (``common.wire.call.unpredictable_number``). The cloud needs the card number for the
HSM's ARQC check, so the full result (PAN, PAN sequence number, ATC, cryptogram, CID, AIP,
issuer application data, CDOL1 and its data) rides the mTLS link and is kept only sealed;
the teller sees the masked number and the ATC.

``pin_entry``: the PIN pad forms the ISO 9564 format 0 block over the card number read in
this session and encrypts it under its terminal PIN key (slot 1); the agent only ever holds
that ciphertext. With ``params.pin == "new"`` (password reset) the customer types the new
PIN twice and both blocks go to the cloud, whose HSM checks them against each other; with
``"change"`` (PIN change) the current PIN first, then the new one twice: the cloud's HSM
verifies the current one against the core's PVV before it takes the new one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from common.wire.call import StepRequest, unpredictable_number
from edge.steps.presence import CARD_WAIT_S, once_present
from edge.steps.sign import Done
from firmware_adapters.errors import EntryCancelled
from firmware_adapters.iccard import emv
from firmware_adapters.iccard.adapter import IcCardReader
from firmware_adapters.masking import mask_pan
from firmware_adapters.pinpad.adapter import PinPad

#: Opens the card reader for one step (``async with``): the agent's configured reader.
CardReaderFactory = Callable[[], AbstractAsyncContextManager[IcCardReader]]
#: The pad's slot holding the terminal PIN key (the fleet's rotation loads slot 1).
PIN_KEY_SLOT = 1
#: What the customer screen says before each entry of a new PIN (the catalogue's rows
#: ``pin.current``, ``pin.new``, ``pin.again`` in ``edge.teller.prompts``).
CURRENT_TEXT = "请输入原密码,输完按确认"
AGAIN_TEXT = "请再次输入新密码,输完按确认"
NEW_TEXT = "请输入新密码(6位),输完按确认"
#: ``params.pin`` -> the screen's words before each entry and the full result's field for it
ENTRIES: dict[str, tuple[tuple[str | None, str], ...]] = {
    "verify": ((None, "pin_block"),),
    "new": ((NEW_TEXT, "pin_block"), (AGAIN_TEXT, "confirmation_block")),
    "change": (
        (CURRENT_TEXT, "pin_block"),
        (NEW_TEXT, "new_block"),
        (AGAIN_TEXT, "confirmation_block"),
    ),
}


def transaction(request: StepRequest, now: dt.datetime) -> emv.Transaction:
    """The data the card's cryptogram covers: the desk's amount (0 for a business that moves
    no money) and its nonce as the unpredictable number; transaction type 31 (inquiry)."""
    amount = request.params.get("amount_fen", 0)
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise ValueError("params.amount_fen must be a whole number of fen")
    return emv.Transaction(amount, unpredictable_number(request.nonce), now, kind=0x31)


def proof_result(proof: emv.CardProof) -> Done:
    """Pure: the card's answer as the step's result (the cloud decides with the HSM)."""
    if not proof.is_arqc:
        masked = {"card_masked": proof.pan_masked, "atc": proof.atc}
        return Done("failed", f"the card declined online authorisation (CID {proof.cid:02X})",
                    masked)  # fmt: skip
    full: dict[str, Any] = {
        "pan": proof.pan,
        "pan_sequence": proof.pan_sequence,
        "atc": proof.atc,
        "cid": proof.cid,
        "arqc": proof.cryptogram.hex().upper(),
        "aip": proof.aip.hex().upper(),
        "iad": proof.iad.hex().upper(),
        "cdol1": proof.cdol1.hex().upper(),
        "cdol1_data": proof.cdol1_data.hex().upper(),
    }
    masked = {"card_masked": proof.pan_masked, "pan_sequence": proof.pan_sequence,
              "atc": proof.atc}  # fmt: skip
    return Done("passed", "the card answered with an ARQC", masked, full, send_full=True)


class CardStep:
    """Handler for ``card_read``; keeps the card number read in this session for the PIN
    block (on the terminal only, one customer at a time)."""

    def __init__(
        self,
        reader: CardReaderFactory,
        clock: Callable[[], dt.datetime],
        wait_s: float = CARD_WAIT_S,
    ) -> None:
        self.reader = reader
        self.clock = clock
        #: how long the customer has to insert the card (``edge.steps.presence``)
        self.wait_s = wait_s
        #: session id -> the PAN read in that session (never shown, never logged)
        self.pans: dict[str, str] = {}

    async def __call__(self, request: StepRequest) -> Done:
        tx = transaction(request, self.clock())
        async with self.reader() as reader:
            proof = await once_present(lambda: reader.request_cryptogram(tx), self.wait_s)
        self.pans.clear()
        self.pans[request.session] = proof.pan
        return proof_result(proof)


class PinStep:
    """Handler for ``pin_entry`` over the terminal's PIN pad."""

    def __init__(
        self,
        pad: Callable[[], PinPad | None],
        pan: Callable[[str], str | None],
        prompt: Callable[[str | None], Awaitable[None]] | None = None,
        entry_timeout: int = 60,
    ) -> None:
        self.pad = pad
        self.pan = pan
        self.prompt = prompt
        self.entry_timeout = entry_timeout

    async def _say(self, text: str | None) -> None:
        if self.prompt is not None:
            await self.prompt(text)

    async def __call__(self, request: StepRequest) -> Done:
        pad = self.pad()
        if pad is None:
            return Done("error", "no PIN pad is configured on this terminal")
        pan = self.pan(request.session)
        if pan is None:
            return Done("failed", "no bank card read in this session: read the card first")
        mode = str(request.params.get("pin") or "verify")
        entries = ENTRIES.get(mode)
        if entries is None:
            return Done("error", f"unknown PIN entry mode {mode!r} (known: {', '.join(ENTRIES)})")
        new = mode != "verify"
        masked: dict[str, Any] = {"card_masked": mask_pan(pan), "format": "0",
                                  "new_pin": new}  # fmt: skip
        full: dict[str, Any] = {"format": "0", "key_slot": PIN_KEY_SLOT}
        try:
            for text, field in entries:
                if text is not None:
                    await self._say(text)
                block = await pad.enter_pin(
                    PIN_KEY_SLOT, "0", pan, entry_timeout=self.entry_timeout
                )
                full[field] = block.block.hex().upper()
        except EntryCancelled as err:
            return Done("failed", f"no PIN: {err}", masked)
        finally:
            if new:
                await self._say(None)
        return Done("passed", "PIN block formed on the pad", masked, full, send_full=True)
