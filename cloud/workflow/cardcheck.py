"""The cloud's own reading of the ``card_read`` and ``pin_entry`` results: the HSM and the
core decide, never the terminal's word.

``card_read``: the card's CDOL1 data must carry this request's unpredictable number (the
first 4 bytes of the step nonce, ``common.wire.call.unpredictable_number``), then the HSM
recomputes the ARQC from the issuer master key and refuses a replayed ATC; a verified card
answers its token (a keyed hash of PAN and PSN), by which the core names the account. So a
forged cryptogram, a replayed one and one made for another request each fail with a reason.

``pin_entry`` (``verify``): the HSM checks the PIN in the encrypted block (under the
terminal's PIN key ``TPK:<terminal>``) against the PVV the core keeps for the card, and the
core counts the verdict: the third wrong PIN in a row locks the card. ``new`` (password
reset): the HSM checks the new PIN against its confirmation and answers the new PVV, which
the teller's confirm posts to the core (``Proofs.pvv`` → ``new_pvv``). ``change`` (PIN
change): the current PIN verified and counted as in ``verify``, and only then the new PIN
checked against its confirmation as in ``new``. The clear PIN exists
only in the pad and the HSM service; the card number only in the sealed result and the HSM
request.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from common.masking import mask_pan
from common.wire.call import unpredictable_number
from corebank import CoreBankClient, CorePending, CoreRefused
from firmware_adapters.errors import PeripheralError
from firmware_adapters.iccard import emv
from hsm import HsmClient, HsmRefused, HsmUnavailable

UN_TAG = 0x9F37
#: Amount, authorised (n12, BCD): what the cryptogram says the transaction moves.
AMOUNT_TAG = 0x9F02

#: What the customer screen says after a PIN attempt (the terminal shows it in large type).
WRONG_PIN_TEXT = "密码错误,请重新输入。还可尝试{left}次"
LOCKED_TEXT = "密码错误次数过多,银行卡已被锁定。请联系柜员,或持身份证到网点办理解锁"
MISMATCH_TEXT = "两次输入的新密码不一致,请重新设置"
WEAK_TEXT = "新密码过于简单(不能是相同或连续的数字),请重新设置"


@dataclass(frozen=True, slots=True)
class Reading:
    """The cloud's verdict on a card or PIN result: whether the step passes, the plain
    reason, the step record's detail and what the customer screen should say (if any)."""

    passed: bool
    reason: str
    detail: dict[str, Any] = field(default_factory=dict)
    customer_text: str | None = None


def _bytes(full: Mapping[str, Any], name: str) -> bytes:
    value = full.get(name)
    if not isinstance(value, str):
        raise ValueError(f"the card result has no {name!r}")
    return bytes.fromhex(value)


@dataclass(slots=True)
class _Proof:
    """A card result as the HSM client reads it (``hsm.client.CardProofLike``)."""

    pan: str
    pan_sequence: int | None
    aip: bytes
    atc: int
    cryptogram: bytes
    iad: bytes
    cdol1_data: bytes


def proof_of(full: Mapping[str, Any]) -> tuple[_Proof, bytes]:
    """The card's proof and its CDOL1 from a ``card_read`` full result (ValueError names a
    missing or malformed field)."""
    pan, psn, atc = full.get("pan"), full.get("pan_sequence"), full.get("atc")
    if not isinstance(pan, str) or not pan.isdigit():
        raise ValueError("the card result has no card number")
    if psn is not None and not isinstance(psn, int):
        raise ValueError("the card result's pan_sequence is not a number")
    if not isinstance(atc, int) or isinstance(atc, bool):
        raise ValueError("the card result's atc is not a number")
    proof = _Proof(
        pan, psn, _bytes(full, "aip"), atc, _bytes(full, "arqc"), _bytes(full, "iad"),
        _bytes(full, "cdol1_data"),
    )  # fmt: skip
    return proof, _bytes(full, "cdol1")


def carried(cdol1: bytes, cdol1_data: bytes, wanted: int) -> bytes | None:
    """The value of tag ``wanted`` inside the CDOL1 data, None if the CDOL asks none."""
    offset = 0
    for tag, length in emv.parse_dol(cdol1):
        if tag == wanted:
            return cdol1_data[offset : offset + length]
        offset += length
    return None


def carried_un(cdol1: bytes, cdol1_data: bytes) -> bytes | None:
    """The unpredictable number (9F37) inside the CDOL1 data, None if the CDOL asks none."""
    return carried(cdol1, cdol1_data, UN_TAG)


def carried_amount(cdol1: bytes, cdol1_data: bytes) -> int | None:
    """The amount authorised (9F02, BCD) the cryptogram covers, in fen; None if the CDOL
    asks none. ValueError if it is not BCD."""
    raw = carried(cdol1, cdol1_data, AMOUNT_TAG)
    if raw is None:
        return None
    digits = raw.hex()
    if not digits.isdigit():
        raise ValueError("the card's amount (9F02) is not BCD")
    return int(digits)


class CardChecks:
    """The HSM and core calls behind the card and PIN steps.

    ``imk``: the issuer master key for ARQCs in the HSM; ``pvk``: the PIN verification key;
    ``tpk(terminal)``: the name of that terminal's PIN key (``TPK:<terminal>`` as the
    rotation job keeps it)."""

    def __init__(
        self,
        hsm: HsmClient,
        core: CoreBankClient,
        imk: str,
        pvk: str,
        tpk: Callable[[str], str] = lambda terminal: f"TPK:{terminal}",
    ) -> None:
        self.hsm, self.core = hsm, core
        self.imk, self.pvk, self.tpk = imk, pvk, tpk

    async def card(
        self, full: Mapping[str, Any] | None, nonce: str, amount_fen: int | None = None
    ) -> Reading:
        """Is this the card, present now, answering this request? ``amount_fen``: the
        amount the teller entered, which the card's cryptogram must cover (the HSM then
        verifies the ARQC over CDOL1 data carrying it); None when the desk asked none."""
        if full is None:
            return Reading(False, "the card result carries no card data")
        try:
            proof, cdol1 = proof_of(full)
            un = carried_un(cdol1, proof.cdol1_data)
            covered = carried_amount(cdol1, proof.cdol1_data)
        except (ValueError, PeripheralError) as err:
            return Reading(False, f"the card result is malformed: {err}")
        masked = mask_pan(proof.pan)
        detail: dict[str, Any] = {"card_masked": masked, "atc": proof.atc}
        if amount_fen is not None:
            if covered is None:
                return Reading(False, "the card's CDOL1 asks no amount", detail)
            if covered != amount_fen:
                return Reading(
                    False, f"the card's cryptogram covers {covered} fen, not the "
                    f"{amount_fen} fen the teller entered", detail,
                )  # fmt: skip
            detail["amount_fen"] = amount_fen
        if un is None:
            return Reading(False, "the card's CDOL1 asks no unpredictable number", detail)
        if un != unpredictable_number(nonce):
            return Reading(
                False, "the cryptogram was made for another request (its unpredictable "
                "number is not this step's nonce)", detail,
            )  # fmt: skip
        try:
            arqc = await self.hsm.verify_arqc(self.imk, proof)
        except (HsmRefused, HsmUnavailable) as err:
            return Reading(False, f"the HSM could not check the cryptogram: {err}", detail)
        if not arqc.verified:
            why = {
                "cryptogram_mismatch": "the card's cryptogram does not verify (forged or altered)",
                "atc_replayed": f"the card's transaction counter {proof.atc} was seen before "
                "(a replayed cryptogram)",
            }.get(arqc.reason, arqc.reason)
            return Reading(False, why, {**detail, "arqc_verified": False})
        detail["arqc_verified"] = True
        try:
            card = await self.core.card(arqc.card_token)
        except CoreRefused as err:
            return Reading(False, f"the core does not know this card ({err.reason})", detail)
        except CorePending as err:
            return Reading(False, f"the core did not answer: {err}", detail)
        detail.update({"account": card.account, "card_token": arqc.card_token,
                       "locked": card.locked})  # fmt: skip
        return Reading(True, f"ARQC verified by the HSM (ATC {proof.atc})", detail)

    async def pin(
        self,
        terminal_id: str,
        card: Mapping[str, Any],
        card_detail: Mapping[str, Any],
        full: Mapping[str, Any] | None,
        mode: str,
    ) -> Reading:
        """The PIN block(s) of a ``pin_entry`` result, for the card read in this session
        (``card``: its sealed full result, ``card_detail``: its step record)."""
        pan = card.get("pan")
        if not isinstance(pan, str) or full is None or not isinstance(full.get("pin_block"), str):
            return Reading(False, "the PIN result carries no PIN block")
        account = str(card_detail.get("account") or "")
        token = str(card_detail.get("card_token") or "")
        key = self.tpk(terminal_id)
        detail: dict[str, Any] = {"card_masked": mask_pan(pan), "mode": mode}
        try:
            block = bytes.fromhex(str(full["pin_block"]))
            if mode == "new":
                again = bytes.fromhex(str(full.get("confirmation_block") or ""))
                return await self._new(block, again, pan, key, detail)
            if mode == "change":
                return await self._change(block, full, pan, key, account, token, detail)
            return await self._verify(block, pan, key, account, token, detail)
        except ValueError as err:
            return Reading(False, f"the PIN result is malformed: {err}", detail)
        except HsmUnavailable as err:
            return Reading(False, f"the HSM did not answer: {err}", detail)
        except CorePending as err:
            return Reading(False, f"the core did not answer: {err}", detail)

    async def _new(
        self, block: bytes, again: bytes, pan: str, key: str, detail: dict[str, Any]
    ) -> Reading:
        if not again:
            return Reading(False, "a new PIN needs its confirmation block", detail)
        try:
            pvv = await self.hsm.change_pin(block, again, pan, key, self.pvk)
        except HsmRefused as err:
            text = {"pin_mismatch": MISMATCH_TEXT, "pin_weak": WEAK_TEXT}.get(err.reason)
            return Reading(False, f"the new PIN was refused by the HSM ({err.reason})",
                           detail, text)  # fmt: skip
        return Reading(True, "new PIN and confirmation agree (checked in the HSM)",
                       {**detail, "pvv": pvv, "new_pin": True})  # fmt: skip

    async def _change(
        self,
        current: bytes,
        full: Mapping[str, Any],
        pan: str,
        key: str,
        account: str,
        token: str,
        detail: dict[str, Any],
    ) -> Reading:
        """The current PIN first (a wrong one counts, as in ``verify``), then the new one."""
        new = bytes.fromhex(str(full.get("new_block") or ""))
        again = bytes.fromhex(str(full.get("confirmation_block") or ""))
        if not new or not again:
            return Reading(False, "a PIN change needs the new PIN and its confirmation", detail)
        checked = await self._verify(current, pan, key, account, token, detail)
        if not checked.passed:
            return checked
        changed = await self._new(new, again, pan, key, checked.detail)
        if not changed.passed:
            return changed
        return Reading(True, "current PIN verified; new PIN and confirmation agree (HSM)",
                       changed.detail)  # fmt: skip

    async def _verify(
        self, block: bytes, pan: str, key: str, account: str, token: str, detail: dict[str, Any]
    ) -> Reading:
        if not account or not token:
            return Reading(False, "the card step recorded no account to check the PIN for",
                           detail)  # fmt: skip
        try:
            card = await self.core.card(token)
        except CoreRefused as err:
            return Reading(False, f"the core does not know this card ({err.reason})", detail)
        if card.locked:
            return Reading(False, "the card is locked after three wrong PINs",
                           {**detail, "locked": True}, LOCKED_TEXT)  # fmt: skip
        try:
            ok = await self.hsm.verify_pin(block, pan, key, self.pvk, card.pvv)
        except HsmRefused as err:
            # a block under another key is the terminal's fault, not a wrong PIN: not counted
            return Reading(False, f"the PIN block was refused by the HSM ({err.reason})", detail)
        try:
            tries = await self.core.record_pin_check(account, ok)
        except CoreRefused as err:
            return Reading(False, f"the core refused the PIN check ({err.reason})",
                           {**detail, "locked": err.reason == "card_locked"},
                           LOCKED_TEXT if err.reason == "card_locked" else None)  # fmt: skip
        detail = {**detail, "tries_left": tries.tries_left, "locked": tries.locked}
        if ok:
            return Reading(True, "PIN verified by the HSM", {**detail, "pin_verified": True})
        if tries.locked:
            return Reading(False, "wrong PIN: the third in a row, the core locked the card",
                           detail, LOCKED_TEXT)  # fmt: skip
        return Reading(False, f"wrong PIN ({tries.tries_left} tries left)", detail,
                       WRONG_PIN_TEXT.format(left=tries.tries_left))  # fmt: skip
