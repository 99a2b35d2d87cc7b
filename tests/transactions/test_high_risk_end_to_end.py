"""One high-risk business (``password_reset``) from the first step to a verified evidence
package, with every real part the project has together:

- the ID card over the serial reader simulator (``edge.steps.idcard``), checked online by
  the cloud against the identity-gateway simulator process;
- face match with the real dlib models from the signed manifest slot, the live frame
  against the photo the reader gave in this session;
- liveness: the agent's own verdict (``edge.vision.verdict.decide`` over frame analyses and
  a passed challenge, ``tests.steps_rig.agent_verdict``) — not from a camera: the vision
  pipeline on frames is tested in ``tests/vision``;
- the bank card through pcscd + vpcd with an ARQC over the desk's nonce verified by the
  HSM service; the new PIN twice on the PIN pad simulator (pty), checked by the HSM;
- the teller's confirm posting once to the core simulator, and the sealed package checked
  by the evidence verifier.

Every result is signed by the terminal's enrolled key and verified by the cloud.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.evidence import package
from cloud.evidence.verify import verify
from cloud.workflow.models import CorePostingRow
from common import procs
from cuntong.servers.corebank import CoreBankServer
from cuntong.servers.idcheck import IdentityGateway
from edge.steps.card import PinStep
from edge.steps.facematch import FaceMatchStep
from edge.steps.paperwork import delivered_result
from edge.vision.facematch import FaceMatcher
from edge.vision.runtime import ModelSet
from firmware_adapters.iccard.vpcd import VirtualCardSlot
from firmware_adapters.idcard.simulator import sample_card
from firmware_adapters.pty_server import PtyServer
from idcheck import IdentityClient
from tests.helpers import eventually
from tests.oversight.conftest import Cloud
from tests.steps_rig import Terminal, agent_verdict, id_reader
from tests.transactions import card_rig
from tests.transactions.card_rig import Bank, answer, card_step, insert, start
from tests.transactions.card_rig import ask as ask_step
from tests.transactions.parts import customer_types, pad
from tests.transactions.posting_helpers import core_account
from tests.vision.conftest import astronaut, models  # noqa: F401 - fixtures
from tests.vision.face_match_models import signed_copy

KEY = b"cloud-key-for-the-identity-gateway"
CARD = sample_card(0)  # 王美娜; her photo is the face in ``astronaut``
NEW_PIN = "482915"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IdentityGateway]:
    ids = [{"id_number": CARD.text.id_number, "name": CARD.text.name, "status": "normal"}]
    gw = IdentityGateway(procs.free_port(), tmp_path_factory.mktemp("idgw"), KEY, ids)
    gw.start()
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture(scope="module")
def matcher(models: ModelSet, tmp_path_factory: pytest.TempPathFactory) -> FaceMatcher:  # noqa: F811
    path, trusted = signed_copy(tmp_path_factory.mktemp("fm"), Ed25519PrivateKey.generate())
    return FaceMatcher.load(models.detector, path, trusted)


@pytest.fixture
async def everything(
    tmp_path: Path, bank: Bank, core_server: CoreBankServer, gateway: IdentityGateway
) -> AsyncIterator[tuple[Terminal, Cloud]]:
    identity = IdentityClient(gateway.url, KEY, "cloud", try_timeout_s=5.0, total_timeout_s=15.0)
    async with card_rig.terminal_and_cloud(tmp_path, bank, core_server, identity=identity) as both:
        yield both


async def test_password_reset_with_every_real_part_to_a_verified_evidence_package(
    tmp_path: Path,
    bank: Bank,
    everything: tuple[Terminal, Cloud],
    matcher: FaceMatcher,
    astronaut: np.ndarray,  # noqa: F811
    pinpad_pty: PtyServer,
    card_slot: VirtualCardSlot,
    core_server: CoreBankServer,
) -> None:
    terminal, cloud = everything
    session = f"S-{uuid.uuid4().hex[:8]}"
    teller = await start(cloud, session, "password_reset")
    sup = await cloud.client("sup", "supervisor")
    url = f"/api/v1/workflow/{session}"
    r = await teller.post(f"{url}/steps", json={"step": "dual_recording"})
    assert r.status_code == 200, r.text

    async with id_reader(tmp_path, CARD) as id_step:
        ask = await ask_step(cloud, session, "id_card_read")
        verified, passed = await answer(cloud, terminal, ask, await id_step(ask))
    assert passed and verified.masked["name"] == "王*娜", verified.reason

    checked = await teller.post(f"{url}/steps/id_online_check/run")
    assert checked.status_code == 200, checked.text
    assert checked.json()["next_step"] == "face_match"

    async def loaded() -> FaceMatcher:
        return matcher

    async def frame() -> np.ndarray:
        return np.ascontiguousarray(astronaut[20:320, 80:380])

    ask = await ask_step(cloud, session, "face_match")
    face = FaceMatchStep(loaded, id_step.photos.get, frame)
    verified, passed = await answer(cloud, terminal, ask, await face(ask))
    assert passed and verified.masked["score"] >= 55, verified.reason

    for step in ("liveness", "active_liveness"):
        ask = await ask_step(cloud, session, step)
        verified, passed = await answer(cloud, terminal, ask, agent_verdict(93))
        assert passed, verified.reason

    await insert(card_slot, bank.card)
    cards = card_step()
    ask = await ask_step(cloud, session, "card_read")
    verified, passed = await answer(cloud, terminal, ask, await cards(ask))
    assert passed and verified.masked["account"] == bank.account, verified.reason

    async with pad(pinpad_pty) as p:
        customer_types(pinpad_pty, NEW_PIN + "#")
        ask = await ask_step(cloud, session, "pin_entry")
        verified, passed = await answer(
            cloud, terminal, ask, await PinStep(lambda: p, cards.pans.get)(ask)
        )
    assert passed, verified.reason

    ask = await ask_step(cloud, session, "e_signature")
    signature = {"signature": {"sha256": "ef" * 32, "strokes": 4}}
    _, passed = await answer(cloud, terminal, ask, delivered_result("e_signature", signature))
    assert passed
    r = await sup.post(f"{url}/steps", json={"step": "supervisor_authorisation"})
    assert r.status_code == 200, r.text

    before = (await core_account(core_server, bank.account))["postings"]
    done = await teller.post(f"{url}/confirm", json={})
    assert done.status_code == 200, done.text
    assert done.json()["posting"]["status"] == "applied"
    assert done.json()["workflow"]["outcome"] == "completed"
    assert (await core_account(core_server, bank.account))["postings"] == before + 1
    row = await CorePostingRow.get(session_id=session)
    assert row.body["proofs"]["arqc_verified"] is True and "new_pvv" in row.body["proofs"]

    # The sealed package verifies: seal, timestamp, hash chain and the business's process.
    keys = cloud.ov.evidence_keys
    pkg = cloud.ov.evidence_dir / package.safe_name(session)
    await eventually(lambda: _exists(pkg / "package.json"), timeout=60)
    report = verify(
        pkg, [keys.seal.public_key(), keys.tsa.public_key()], keys.data_master,
        cloud.ov.catalogue,
    )  # fmt: skip
    assert report.problems == [], report.problems
    kinds = [e["kind"] for e in package.read_document(pkg)["manifest"]["events"]]
    assert kinds.count("card_check") == 2 and "core_posted" in kinds


async def _exists(path: Path) -> bool:
    return await asyncio.to_thread(path.exists)
