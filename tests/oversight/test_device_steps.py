"""Device steps end to end in the cloud: asked with a nonce, answered by a result the
terminal's own code signed (``edge.steps``; ID reads over the real serial simulator),
verified against the CA, and refused with a clear error when untrustworthy. The online
identity check runs against the real gateway simulator process."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from cloud.auth.models import AuditEntry
from cloud.quality.models import ReviewItem
from cloud.workflow import service, steps
from cloud.workflow.engine import Actor
from cloud.workflow.errors import StepOutOfOrder, StepResultRefused
from cloud.workflow.models import WorkflowState
from common import procs
from common.wire.call import StepRequest
from cuntong.servers.idcheck import IdentityGateway
from edge.steps.sign import Done
from firmware_adapters.idcard.simulator import make_id_number, sample_card
from idcheck import IdentityClient
from provisioning import ca as ca_lib
from tests.oversight.conftest import Cloud
from tests.steps_rig import Terminal, agent_verdict, enrol, id_reader

KEY = b"cloud-key-for-the-identity-gateway"
CARD = sample_card(0)  # 王美娜, long-term card
#: A well-formed card (right check digit) whose number the identity service does not know.
UNKNOWN = dataclasses.replace(
    CARD,
    text=dataclasses.replace(
        CARD.text, id_number=make_id_number("110105", CARD.text.birth_date, 977)
    ),
)
TID = "SX-00001"
TELLER = Actor("alice", frozenset({"teller"}))
BUSINESS = "password_reset"


@pytest.fixture(scope="module")
def gateway_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IdentityGateway]:
    ids = [{"id_number": CARD.text.id_number, "name": CARD.text.name, "status": "normal"}]
    gw = IdentityGateway(procs.free_port(), tmp_path_factory.mktemp("idgw"), KEY, ids, hang_s=30)
    gw.start()
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture
def identity_gateway(gateway_process: IdentityGateway) -> Iterator[IdentityClient]:
    gateway_process.set_mode("up")
    yield IdentityClient(
        gateway_process.url, KEY, "cloud", try_timeout_s=0.5, total_timeout_s=2.0, attempts=2
    )
    gateway_process.set_mode("up")


@pytest.fixture
def terminal(cloud: Cloud, terminal_ca: ca_lib.CertificateAuthority) -> Terminal:
    return enrol(terminal_ca, TID, cloud.clock())


async def _started(cloud: Cloud, session: str, business: str = BUSINESS, teller=None):  # type: ignore[no-untyped-def]
    teller = teller or await cloud.client("alice", "teller")
    r = await teller.post(f"/api/v1/workflow/{session}/start", json={"business": business})
    assert r.status_code == 201, r.text
    if r.json()["next_step"] == "dual_recording":
        body = {"step": "dual_recording"}
        r = await teller.post(f"/api/v1/workflow/{session}/steps", json=body)
        assert r.status_code == 200, r.text
    return teller


async def _read_id(cloud: Cloud, tmp_path: Path, terminal: Terminal, session: str, card=CARD):  # type: ignore[no-untyped-def]
    _, request = await steps.ask(cloud.ov, session, "id_card_read", TELLER, TID, cloud.clock())
    async with id_reader(tmp_path, card) as handler:
        result = terminal.sign(request, await handler(request), cloud.clock())
    return request, result


async def _accept(cloud: Cloud, session: str, result, terminal_id: str = TID):  # type: ignore[no-untyped-def]
    return await steps.accept(
        cloud.ov, cloud.ov.device_issuers, terminal_id, session, result, cloud.clock()
    )


async def test_a_teller_cannot_mark_a_device_step_done(cloud: Cloud) -> None:
    teller = await _started(cloud, "S-1")
    for body in ({"step": "id_card_read"}, {"step": "id_card_read", "passed": True}):
        r = await teller.post("/api/v1/workflow/S-1/steps", json=body)
        assert r.status_code == 403 and "done by the terminal" in r.text
    typed = await teller.post(
        "/api/v1/workflow/S-1/steps", json={"step": "id_card_read", "liveness_score": 99}
    )
    assert typed.status_code == 422 and "liveness_score" in typed.text
    # Without a terminal in a call there is nobody to ask.
    asked = await teller.post("/api/v1/workflow/S-1/steps/id_card_read/ask")
    assert asked.status_code == 409 and "no terminal" in asked.text
    state = await teller.get("/api/v1/workflow/S-1")
    assert state.json()["next_step"] == "id_card_read"


async def test_a_signed_id_read_passes_and_only_masked_data_is_kept(
    cloud: Cloud, tmp_path: Path, terminal: Terminal
) -> None:
    await _started(cloud, "S-2")
    _, result = await _read_id(cloud, tmp_path, terminal, "S-2")
    assert result.masked["name"] == "王*娜" and result.masked["id_number"].startswith("6101")
    loaded, verified, passed = await _accept(cloud, "S-2", result)
    assert passed and verified.signer == TID
    assert loaded.workflow.next_step == "id_online_check"
    state = await WorkflowState.get(session_id="S-2")
    text = orjson.dumps(state.events).decode()
    assert CARD.text.name not in text and CARD.text.id_number not in text
    kept = next(e["data"] for e in state.events if e["kind"] == "step_result")
    assert kept["masked"]["id_number"] == "6101**********" + CARD.text.id_number[-4:]
    assert kept["signature"] == result.signature and "sealed_full" in kept


async def test_untrusted_results_are_refused_by_name(
    cloud: Cloud, tmp_path: Path, terminal: Terminal, terminal_ca: ca_lib.CertificateAuthority
) -> None:
    await _started(cloud, "S-3")
    request, result = await _read_id(cloud, tmp_path, terminal, "S-3")
    done = Done("passed", "ok", {"name": "x"}, {"name": "x"})
    now = cloud.clock()
    # Signed by another enrolled terminal, and by a terminal of a CA the cloud does not trust.
    other = enrol(terminal_ca, "SX-00002", now)
    with pytest.raises(StepResultRefused, match="signed by terminal 'SX-00002'"):
        await _accept(cloud, "S-3", other.sign(request, done, now))
    foreign_ca = ca_lib.load_or_create(tmp_path / "foreign", now)
    foreign = enrol(foreign_ca, TID, now)
    with pytest.raises(StepResultRefused, match="not issued by our CA"):
        await _accept(cloud, "S-3", foreign.sign(request, done, now))
    # A nonce the desk never issued, and one issued for another step.
    stranger = StepRequest("S-3", "id_card_read", "ab" * 16)
    with pytest.raises(StepResultRefused, match="never issued"):
        await _accept(cloud, "S-3", terminal.sign(stranger, done, now))
    wrong_step = StepRequest("S-3", "liveness", request.nonce)
    with pytest.raises(StepResultRefused, match="issued for id_card_read, not liveness"):
        await _accept(cloud, "S-3", terminal.sign(wrong_step, done, now))
    # A result for another session, sent while this terminal serves S-3.
    elsewhere = StepRequest("S-other", "id_card_read", request.nonce)
    with pytest.raises(StepResultRefused, match="another session"):
        await _accept(cloud, "S-3", terminal.sign(elsewhere, done, now))
    # Tampering with what was signed breaks the signature.
    forged = dataclasses.replace(result, outcome="passed", digest="0" * 64)
    with pytest.raises(StepResultRefused, match="signature does not verify"):
        await _accept(cloud, "S-3", forged)
    # ...and so does changing only the outcome, the reason or the masked data (the cloud
    # passes a step on the outcome and reads scores from the masked data).
    for change in (
        {"outcome": "failed"},
        {"reason": "card has expired"},
        {"masked": {**result.masked, "name": "李*四"}},
    ):
        with pytest.raises(StepResultRefused, match="signature does not verify"):
            await _accept(cloud, "S-3", dataclasses.replace(result, **change))
    # The genuine result passes once; the same bytes again are a replay.
    _, _, passed = await _accept(cloud, "S-3", result)
    assert passed
    with pytest.raises(StepResultRefused, match="replayed nonce"):
        await _accept(cloud, "S-3", result)
    # Out of order: asking for liveness before the online check and face match.
    with pytest.raises(StepOutOfOrder, match="next step is 'id_online_check'"):
        await steps.ask(cloud.ov, "S-3", "liveness", TELLER, TID, now)


async def test_an_expired_card_is_refused_and_the_step_stays_open(
    cloud: Cloud, tmp_path: Path, terminal: Terminal
) -> None:
    await _started(cloud, "S-4")
    old = dataclasses.replace(
        CARD,
        text=dataclasses.replace(
            CARD.text,
            valid_from=CARD.text.valid_from.replace(year=2006),
            valid_until=CARD.text.valid_from.replace(year=2016),
        ),
    )
    _, result = await _read_id(cloud, tmp_path, terminal, "S-4", old)
    assert result.outcome == "failed" and result.masked["refused"] == "expired"
    assert result.masked["customer_text"] == "身份证已过期，请使用有效证件"
    loaded, verified, passed = await _accept(cloud, "S-4", result)
    assert not passed and verified.reason == "card has expired"
    assert loaded.workflow.next_step == "id_card_read" and loaded.workflow.outcome is None


async def test_online_check_with_the_signed_read_then_liveness_from_the_agent(
    cloud: Cloud, tmp_path: Path, terminal: Terminal, identity_gateway: IdentityClient
) -> None:
    teller = await _started(cloud, "S-5")
    _, result = await _read_id(cloud, tmp_path, terminal, "S-5")
    await _accept(cloud, "S-5", result)
    checked = await teller.post("/api/v1/workflow/S-5/steps/id_online_check/run")
    assert checked.status_code == 200, checked.text
    assert checked.json()["next_step"] == "face_match"
    assert "一致" in checked.json()["notice"]
    # face_match: the terminal has no handler yet here; a supervisor overrides below.
    sup = await cloud.client("sup", "supervisor")
    own = await teller.post(
        "/api/v1/workflow/S-5/steps/face_match/override", json={"reason": "camera broken"}
    )
    assert own.status_code == 403
    short = await sup.post("/api/v1/workflow/S-5/steps/face_match/override", json={"reason": ""})
    assert short.status_code == 422
    over = await sup.post(
        "/api/v1/workflow/S-5/steps/face_match/override",
        json={"reason": "终端摄像头故障，主管视频核对人证一致"},
    )
    assert over.status_code == 200 and over.json()["next_step"] == "liveness"
    assert over.json()["done"][-1]["detail"]["override"] is True
    # Liveness: the verdict the agent's own producer makes, signed by the terminal.
    now = cloud.clock()
    _, request = await steps.ask(cloud.ov, "S-5", "liveness", TELLER, TID, now)
    loaded, _, passed = await _accept(
        cloud, "S-5", terminal.sign(request, agent_verdict(0.93), now)
    )
    assert passed and loaded.workflow.records[-1].detail["score"] == 93
    assert loaded.workflow.next_step == "active_liveness"


async def test_low_liveness_from_the_agent_does_not_pass(
    cloud: Cloud, tmp_path: Path, terminal: Terminal
) -> None:
    await _started(cloud, "S-6", "pension")  # steps: id_card_read, liveness
    _, result = await _read_id(cloud, tmp_path, terminal, "S-6")
    await _accept(cloud, "S-6", result)
    now = cloud.clock()
    _, request = await steps.ask(cloud.ov, "S-6", "liveness", TELLER, TID, now)
    done = agent_verdict(0.41, "pension")
    assert done.masked["decision"] == "manual_review"
    _, _, passed = await _accept(cloud, "S-6", terminal.sign(request, done, now))
    assert not passed


async def test_identity_not_found_rejects_and_a_down_service_waits_for_override(
    cloud: Cloud,
    tmp_path: Path,
    terminal: Terminal,
    identity_gateway: IdentityClient,
    gateway_process: IdentityGateway,
) -> None:
    teller = await _started(cloud, "S-7")
    _, result = await _read_id(cloud, tmp_path, terminal, "S-7", UNKNOWN)
    await _accept(cloud, "S-7", result)
    gone = await teller.post("/api/v1/workflow/S-7/steps/id_online_check/run")
    assert gone.status_code == 200 and gone.json()["outcome"] == "rejected"
    assert "库中无此号" in gone.json()["notice"]

    await _started(cloud, "S-8", teller=teller)
    _, result = await _read_id(cloud, tmp_path, terminal, "S-8")
    await _accept(cloud, "S-8", result)
    gateway_process.set_mode("down")
    down = await teller.post("/api/v1/workflow/S-8/steps/id_online_check/run")
    assert down.status_code == 503 and "暂不可用" in down.text
    assert (await teller.get("/api/v1/workflow/S-8")).json()["next_step"] == "id_online_check"
    sup = await cloud.client("sup", "supervisor")
    over = await sup.post(
        "/api/v1/workflow/S-8/steps/id_online_check/override",
        json={"reason": "联网核查服务中断，主管核对证件原件"},
    )
    assert over.status_code == 200 and over.json()["next_step"] == "face_match"


async def test_an_override_sends_the_session_to_full_review(
    cloud: Cloud, tmp_path: Path, terminal: Terminal
) -> None:
    teller = await _started(cloud, "S-9", "pension")
    _, result = await _read_id(cloud, tmp_path, terminal, "S-9")
    await _accept(cloud, "S-9", result)
    sup = await cloud.client("sup", "supervisor")
    over = await sup.post(
        "/api/v1/workflow/S-9/steps/liveness/override", json={"reason": "camera offline"}
    )
    assert over.status_code == 200
    done = await teller.post("/api/v1/workflow/S-9/finish", json={})
    assert done.status_code == 200 and done.json()["outcome"] == "completed"
    assert (await ReviewItem.get(session_id="S-9")).reason == "supervisor_override"
    state = await WorkflowState.get(session_id="S-9")
    audit = [e for e in state.events if e["kind"] == "step" and e["data"].get("override")]
    assert audit and audit[0]["actor"] == "sup" and audit[0]["data"]["reason"] == "camera offline"
    logged = await AuditEntry.get(action="step_override", target="S-9")
    assert logged.actor == "sup" and logged.detail == {
        "step": "liveness",
        "reason": "camera offline",
    }
    assert (await service.get(cloud.ov, "S-9")).workflow.outcome == "completed"
