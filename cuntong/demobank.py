"""The demo's bank: what ``cuntong up`` does as the issuer and the key custodians, so a call's
``card_read`` and ``pin_entry`` are decided by the HSM and the core, not by an override.

- **The PIN pad** of the demo terminal is keyed as in a secure room: two random master-key
  components, each with its check value, go into the HSM (``TMK:<terminal>``) and into the pad
  (command 8); the HSM makes the terminal PIN key (``TPK:<terminal>``) under the master key
  and the pad loads it (command 2, KCV checked). Done at every start (the pad keeps its keys
  in its key store across its own restarts; the fleet's rotation replaces the TPK later).
- **The card**: an issuer master key (``IMK-AC:issuer``) loaded into the HSM from two
  components; the emulated card personalised with the key derived from it for its PAN and
  PSN (``firmware_adapters.iccard.cardfile``: the card file holds the card's key, never the
  issuer's); a PIN verification key (``PVK:bank``); the demo account in the core simulator
  with the card registered under the HSM's card token and the PVV of the demo PIN, typed on
  the demo pad and turned into a PVV by the HSM.
- **The demo PIN** is random, written only to the customer file (``STATE/cloud/demo-card.json``,
  0600), like the demo accounts' passwords. Its ``customer_types`` is what the simulated
  customer types on the pad (the pad simulator reads it at each entry): change it to try a
  wrong PIN.

Kept across restarts: the card (and its ATC), the issuer keys and the core's registration;
issued again only when one of them is missing.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import httpx

from common.masking import mask_pan
from corebank import CoreBankClient, CoreRefused
from firmware_adapters.iccard import emv
from firmware_adapters.iccard.card import CardProfile
from firmware_adapters.iccard.cardfile import read_card, write_card
from firmware_adapters.pinpad import crypto
from firmware_adapters.pinpad.adapter import PinPad
from hsm import HsmClient
from provisioning.files import write_private

#: The names the cloud's settings use by default (``hsm_imk``, ``hsm_pvk``).
IMK = "IMK-AC:issuer"
PVK = "PVK:bank"
#: The pad's slots (the fleet's rotation loads slot 1 under the master key in slot 0).
MASTER_SLOT, PIN_KEY_SLOT = 0, 1


def tmk(terminal: str) -> str:
    return f"TMK:{terminal}"


def tpk(terminal: str) -> str:
    return f"TPK:{terminal}"


@dataclass(frozen=True)
class DemoCard:
    """What the banner says about the issued card (never the number or the PIN)."""

    masked: str
    account: str
    customer_file: Path
    issued_now: bool


def _components() -> list[tuple[bytes, bytes]]:
    """Two custodians' components, each with the check value printed on its slip."""
    return [(v, crypto.key_check_value("D", v)) for v in (os.urandom(16), os.urandom(16))]


def demo_pin() -> str:
    """Six random digits the HSM's change rules would accept (not all one digit, not a run)."""
    while True:
        pin = f"{secrets.randbelow(10**6):06d}"
        if len(set(pin)) > 1 and pin not in "0123456789" and pin not in "9876543210":
            return pin


def new_pan() -> str:
    """A UnionPay-style test PAN (62170028 …) with a valid Luhn digit."""
    body = f"62170028{secrets.randbelow(10**10):010d}"
    return body + next(d for d in "0123456789" if emv.luhn_ok(body + d))


async def key_pad(hsm: HsmClient, pad: PinPad, terminal: str) -> str:
    """Master key into the HSM and the pad from the same two components, then a TPK from the
    HSM under it into the pad; the TPK's KCV. Raises if the two sides disagree."""
    parts = _components()
    master = await hsm.import_key(tmk(terminal), "TMK", parts)
    pad_kcv = await pad.load_master_key_components(MASTER_SLOT, "D", (parts[0], parts[1]))
    if pad_kcv[:3].hex().upper() != master.kcv:
        raise RuntimeError(f"{terminal}: the pad's master key KCV differs from the HSM's")
    working = await hsm.generate_key(tpk(terminal), "TPK", under=master.name)
    assert working.encrypted is not None
    await pad.load_working_key(
        MASTER_SLOT, PIN_KEY_SLOT, working.encrypted, bytes.fromhex(working.kcv)
    )
    return working.kcv


def _customer(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


async def issue_card(
    hsm: HsmClient,
    core: CoreBankClient,
    core_admin: httpx.AsyncClient,
    pad: PinPad,
    terminal: str,
    account: str,
    card_file: Path,
    customer_file: Path,
) -> DemoCard:
    """The demo card, its keys and its registration in the core: kept when all are there,
    issued (again) when one is missing. ``pad`` must already hold ``TPK:<terminal>``."""
    names = {k.name for k in await hsm.keys()}
    fresh = IMK not in names or not await asyncio.to_thread(card_file.exists)
    if fresh:
        imk, first = os.urandom(16), os.urandom(16)
        second = bytes(a ^ b for a, b in zip(imk, first, strict=True))
        kcv = crypto.key_check_value
        await hsm.import_key(IMK, "IMK-AC", [(first, kcv("D", first)), (second, kcv("D", second))])
        # a new PAN: the HSM's counter table starts clean for it
        write_card(card_file, CardProfile(pan=new_pan(), imk=imk, name="DEMO/CUSTOMER"))
        del imk, first, second
    if PVK not in names:
        await hsm.generate_key(PVK, "PVK")
        fresh = True
    profile = read_card(card_file)
    token = await hsm.card_token(profile.pan, profile.pan_sequence)
    pin = "" if fresh else str(_customer(customer_file).get("pin", ""))
    register = fresh or not pin
    if not register:
        try:
            # An 8-hex-digit PVV is the scheme before IBM 3624 offsets: register again.
            register = not (await core.card(token)).pvv.isdigit()
        except CoreRefused:
            register = True  # the core's database was reset: register the card again
    if register:
        pin = pin or demo_pin()
        body = {
            "card": mask_pan(profile.pan),
            "account": account,
            "terminal": terminal,
            "pin": pin,
            # what the simulated customer types on the demo pad at each PIN entry
            "customer_types": pin,
        }
        write_private(customer_file, json.dumps(body, indent=2, ensure_ascii=False).encode())
        block = await pad.enter_pin(PIN_KEY_SLOT, "0", profile.pan, entry_timeout=60)
        pvv = await hsm.make_pvv(block.block, profile.pan, tpk(terminal), PVK)
        resp = await core_admin.post(
            "/v1/cards", json={"card_token": token, "account": account, "pvv": pvv}
        )
        resp.raise_for_status()
    return DemoCard(mask_pan(profile.pan), account, customer_file, register)
