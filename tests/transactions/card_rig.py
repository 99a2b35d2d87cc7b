"""The card and PIN steps' test rig: the issuer's side (keys, card, account, PVV) built
with the producers' own code, the terminal's own handlers, and the cloud deciding.

``issue`` keys the PIN pad from the HSM (master key by two components, TPK under it), loads
an issuer master key, personalises an emulated card with it, opens an account and registers
the card in the core under the HSM's card token with the PVV of the PIN typed on the pad.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from cloud.workflow import steps
from cloud.workflow.cardcheck import CardChecks
from cloud.workflow.engine import Actor
from common.wire.call import StepRequest
from corebank import CoreBankClient
from cuntong.servers.corebank import CoreBankServer
from edge.steps.card import CardStep
from edge.steps.sign import Done
from firmware_adapters.iccard.adapter import IcCardReader
from firmware_adapters.iccard.card import PbocCard
from firmware_adapters.iccard.pcscd import READER_NAME
from firmware_adapters.iccard.vpcd import VirtualCardSlot
from firmware_adapters.pty_server import PtyServer
from hsm import HsmClient
from tests.oversight.conftest import Cloud
from tests.steps_rig import Terminal, authority, enrol
from tests.transactions.parts import (
    account,
    admin,
    customer_types,
    issuer_key,
    keyed_pad,
    new_card,
    pad,
    present,
)
from tests.transactions.posting_helpers import cloud_with_core

TID = "SX-00001"
TELLER = Actor("alice", frozenset({"teller"}))
PIN, WRONG = "731946", "731947"


@dataclass
class Bank:
    """One test's keys in the shared HSM, its customer's card and account in the core."""

    checks: CardChecks
    card: PbocCard
    account: str
    tpk: str
    pvk: str


async def issue(
    pinpad_pty: PtyServer, hsm: HsmClient, core: CoreBankClient, core_server: CoreBankServer
) -> Bank:
    """The issuer's side, done with the producers' own code: an IMK by two components, the
    pad keyed from the HSM, a card personalised with the IMK, an account, and the card
    registered in the core under the HSM's token with the PVV of the PIN typed on the pad."""
    tag = uuid.uuid4().hex[:8]
    imk_name, imk = await issuer_key(hsm)
    card = new_card(imk)
    pan = card.profile.pan
    acct = await account(core_server, f"A-{tag}", 100_000)
    async with pad(pinpad_pty) as p:
        tpk, _zpk, pvk = await keyed_pad(p, hsm, tag)
        customer_types(pinpad_pty, PIN + "#")
        pvv = await hsm.make_pvv((await p.enter_pin(1, "0", pan)).block, pan, tpk, pvk)
    token = await hsm.card_token(pan, card.profile.pan_sequence)
    await admin(core_server, "POST", "/v1/cards", {"card_token": token, "account": acct,
                                                   "pvv": pvv})  # fmt: skip
    checks = CardChecks(hsm, core, imk_name, pvk, tpk=lambda _terminal: tpk)
    return Bank(checks, card, acct, tpk, pvk)


@asynccontextmanager
async def terminal_and_cloud(
    tmp_path: Path, bank: Bank, core_server: CoreBankServer, **more: Any
) -> AsyncIterator[tuple[Terminal, Cloud]]:
    """An enrolled terminal, and the real cloud app (SQLite) whose card and PIN steps go to
    this bank's HSM keys and the core simulator (``more``: other ``Oversight`` fields)."""
    now = dt.datetime.now(dt.UTC)
    ca = authority(tmp_path / "ca", now)
    fields = {"device_issuers": (ca.issuing,), "cards": bank.checks, **more}
    async with cloud_with_core(tmp_path, core_server, fields) as cloud:
        yield enrol(ca, TID, now), cloud


def card_step() -> CardStep:
    return CardStep(lambda: IcCardReader("iccard", READER_NAME), lambda: dt.datetime.now(dt.UTC))


async def start(
    cloud: Cloud, session: str, business: str, teller: httpx.AsyncClient | None = None
) -> httpx.AsyncClient:
    teller = teller or await cloud.client("alice", "teller")
    r = await teller.post(f"/api/v1/workflow/{session}/start", json={"business": business})
    assert r.status_code == 201, r.text
    return teller


async def ask(cloud: Cloud, session: str, step: str, amount_fen: int | None = None) -> StepRequest:
    """The serving teller asks ``step`` (for ``card_read``: over ``amount_fen``, if given)."""
    _, request = await steps.ask(cloud.ov, session, step, TELLER, TID, cloud.clock(), amount_fen)
    return request


async def answer(cloud: Cloud, terminal: Terminal, request: StepRequest, done: Done):  # type: ignore[no-untyped-def]
    """The terminal signs ``done`` as its answer to ``request``; the cloud decides."""
    result = terminal.sign(request, done, cloud.clock())
    _, verified, passed = await steps.accept(
        cloud.ov, cloud.ov.device_issuers, TID, request.session, result, cloud.clock(),
        cloud.ov.cards,
    )  # fmt: skip
    return verified, passed


async def insert(slot: VirtualCardSlot, card: PbocCard) -> None:
    async with IcCardReader("iccard", READER_NAME) as reader:
        await present(reader, slot, card)
