"""Helpers the transaction tests share: key ceremonies, card personalisation, core accounts.

Each builds its inputs with the producer's own code (the pad's KCV, the card emulator, the
HSM's own export), never hand-written bytes."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import uuid

import httpx
import pytest

from cuntong.servers.corebank import CoreBankServer
from firmware_adapters.iccard import emv
from firmware_adapters.iccard.adapter import IcCardReader
from firmware_adapters.iccard.card import CardProfile, PbocCard
from firmware_adapters.iccard.vpcd import VirtualCardSlot
from firmware_adapters.pinpad import crypto
from firmware_adapters.pinpad.adapter import PinPad
from firmware_adapters.pinpad.simulator import PinPadSimulator
from firmware_adapters.pty_server import PtyServer
from hsm import HsmClient


def customer_types(server: PtyServer, keys: str) -> None:
    sim = server.responder
    assert isinstance(sim, PinPadSimulator)
    with server.lock:
        sim.key_script = keys


def components() -> list[tuple[bytes, bytes]]:
    """Two custodians' components, each with the KCV printed on its slip."""
    return [(v, crypto.key_check_value("D", v)) for v in (os.urandom(16), os.urandom(16))]


async def keyed_pad(pad: PinPad, hsm: HsmClient, tag: str) -> tuple[str, str, str]:
    """Master key into pad and HSM from the same components; a TPK from the HSM into the pad.

    Returns the names of the TPK, a ZPK and a PVK in the HSM."""
    parts = components()
    tmk = await hsm.import_key(f"TMK:{tag}", "TMK", parts)
    pad_kcv = await pad.load_master_key_components(0, "D", (parts[0], parts[1]))
    assert pad_kcv[:3].hex().upper() == tmk.kcv  # both sides hold the same master key
    tpk = await hsm.generate_key(f"TPK:{tag}", "TPK", under=tmk.name)
    assert tpk.encrypted is not None and len(tpk.encrypted) == 16
    await pad.load_working_key(0, 1, tpk.encrypted, bytes.fromhex(tpk.kcv))
    zpk = await hsm.generate_key(f"ZPK:{tag}", "ZPK")
    pvk = await hsm.generate_key(f"PVK:{tag}", "PVK")
    return tpk.name, zpk.name, pvk.name


def pad(server: PtyServer) -> PinPad:
    return PinPad("pinpad", str(server.link), 9600, timeout=2.0)


def kcv(value: bytes) -> bytes:
    return crypto.key_check_value("D", value)


async def issuer_key(hsm: HsmClient) -> tuple[str, bytes]:
    """An IMK-AC loaded into the HSM by two components; its clear value personalises cards."""
    imk = os.urandom(16)
    first = os.urandom(16)
    second = bytes(a ^ b for a, b in zip(imk, first, strict=True))
    name = f"IMK-AC:{uuid.uuid4().hex[:8]}"
    await hsm.import_key(name, "IMK-AC", [(first, kcv(first)), (second, kcv(second))])
    return name, imk


def new_card(imk: bytes, atc: int = 0x29) -> PbocCard:
    """A card of its own (a fresh PAN) so the HSM's ATC table starts clean for it."""
    body = f"62170028{int.from_bytes(os.urandom(4), 'big') % 10**10:010d}"
    check = next(d for d in "0123456789" if emv.luhn_ok(body + d))
    return PbocCard(CardProfile(pan=body + check, imk=imk, atc=atc))


async def present(reader: IcCardReader, slot: VirtualCardSlot, card: PbocCard) -> None:
    # pcscd must see the slot empty before the card goes in. A reader whose first look
    # comes after pcscd has already seen the card takes "present" as its starting state;
    # and a previous test's card pulled out and this one pushed in between two of pcscd's
    # polls look like no change at all. Either way the reader waits for an insertion that
    # has happened (seen in full runs as "pcscd never reported the card").
    await asyncio.to_thread(slot.remove)
    for _ in range(60):  # 30 s
        await reader.wait_for_event(0.5)
        if not reader.card_seen:
            break
    else:
        pytest.fail("pcscd never saw the slot empty")
    await asyncio.to_thread(slot.insert, card)
    for _ in range(60):  # 30 s: pcscd polls its readers, slowly on a loaded machine
        if await reader.wait_for_event(0.5) == "inserted":
            return
    pytest.fail("pcscd never reported the card")


def desk_transaction(amount_fen: int = 50_000) -> emv.Transaction:
    """The desk's side: amount and a fresh unpredictable number for this request."""
    return emv.Transaction(amount_fen, os.urandom(4), dt.datetime.now(dt.UTC), kind=0x01)


async def admin(server: CoreBankServer, method: str, path: str, body: object = None) -> dict:
    async with httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {server.secret}"}, timeout=5
    ) as http:
        resp = await http.request(method, path, json=body)
        assert resp.is_success, resp.text
        return resp.json()


async def account(server: CoreBankServer, name: str, balance_fen: int = 100_000) -> str:
    await admin(server, "POST", "/v1/accounts", {"account": name, "balance_fen": balance_fen})
    return name
