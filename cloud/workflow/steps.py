"""Device steps against the database: ask the terminal, accept its signed result, let a
supervisor override, and run the cloud's own online identity check.

The timeline keeps the whole exchange, so the evidence package holds it: a
``step_requested`` event per request (step, nonce, terminal), a ``step_result`` event per
verified result (masked data, digest, signature, the terminal's certificate; the full data
only sealed under the session's evidence key, for the online check), ``id_online_check``
events, and the ``step`` record of a pass or an override.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import orjson
from cryptography import x509

from cloud.auth import audit
from cloud.evidence.chain import Timeline
from cloud.workflow import engine, store
from cloud.workflow.cardcheck import CardChecks, Reading
from cloud.workflow.device import Verified, check_before_queue, check_result
from cloud.workflow.errors import StepInputError, StepOutOfOrder, StepResultRefused, WorkflowError
from cloud.workflow.service import Workbench, get
from common import suite as suite_lib
from common.wire.call import DEVICE_STEPS, StepRequest, StepResult, new_nonce
from idcheck import OUTCOMES, SERVICE_DOWN, AnswerInvalid, IdentityServiceDown, RequestRefused
from provisioning.service import revoked_serials


class StepWaiting(WorkflowError):
    """The step cannot be decided now (the identity service is down): try again later or
    have a supervisor override it. The call goes on."""


class IdentityCheck(Protocol):
    """What the online check needs of ``idcheck.client.IdentityClient``."""

    async def check(self, session_id: str, name: str, id_number: str) -> Any: ...


def _serving(loaded: store.Loaded, who: engine.Actor) -> None:
    if who.id != loaded.workflow.teller_id:
        raise engine.SecondPersonRequired(
            f"only the serving teller asks the terminal for a step in {loaded.workflow.session_id}"
        )


def _issued(timeline: Timeline, terminal_id: str) -> dict[str, str]:
    return {
        str(e.data["nonce"]): str(e.data["step"])
        for e in timeline.events
        if e.kind == "step_requested" and e.data.get("terminal") == terminal_id
    }


def _answered(timeline: Timeline) -> set[str]:
    return {str(e.data["nonce"]) for e in timeline.events if e.kind == "step_result"}


def moves_amount(business: Any) -> bool:
    """Whether the business posts an amount (its catalogue posting asks ``amount_fen``)."""
    posting = business.posting
    return posting is not None and "amount_fen" in posting.fields


def _amount_param(
    wf: engine.Workflow, step: str, amount_fen: Any, required: bool
) -> dict[str, Any]:
    """The amount the card's cryptogram must cover, as the step request's params."""
    code = wf.business.code
    if amount_fen is None:
        if required and step == "card_read" and moves_amount(wf.business):
            raise StepInputError(
                f"{code} moves money: enter the amount (amount_fen) before the card is read, "
                "so the card's cryptogram covers it"
            )
        return {}
    if step != "card_read":
        raise StepInputError(f"only card_read takes an amount, not {step}")
    if not moves_amount(wf.business):
        raise StepInputError(f"{code} moves no amount: card_read takes none")
    if isinstance(amount_fen, bool) or not isinstance(amount_fen, int) or amount_fen <= 0:
        raise StepInputError("amount_fen must be a positive whole number of fen")
    if amount_fen >= 10**12:
        raise StepInputError("amount_fen is out of range (12 digits at most)")
    return {"amount_fen": amount_fen}


async def ask(
    ov: Workbench,
    session_id: str,
    step: str,
    who: engine.Actor,
    terminal_id: str,
    now: dt.datetime,
    amount_fen: int | None = None,
    *,
    amount_required: bool = False,
) -> tuple[store.Loaded, StepRequest]:
    """The serving teller asks the session's terminal for the next step (a fresh nonce).

    ``amount_fen``: for ``card_read`` of a business that posts an amount, what the teller
    entered; the card's cryptogram is asked over it and the cloud accepts the card only if
    it covers that amount (``cardcheck``), and the confirm posts only that amount
    (``posting``). ``amount_required`` (a core is attached): refuse to ask without it."""
    loaded = await get(ov, session_id)
    _serving(loaded, who)
    wf = loaded.workflow
    if step not in DEVICE_STEPS:
        raise StepOutOfOrder(f"{step!r} is not a step the terminal performs")
    if wf.outcome is not None or wf.next_step != step:
        raise StepOutOfOrder(
            f"session {session_id}: next step is {wf.next_step!r}, cannot ask for {step!r}"
        )
    amount = _amount_param(wf, step, amount_fen, amount_required)
    params: dict[str, Any] = {"business": wf.business.code, **amount}
    if step == "face_match":
        params["threshold"] = wf.business.face_match_threshold
    elif step == "pin_entry":
        params["pin"] = wf.business.pin_entry  # "verify", or "new" (password reset)
    request = StepRequest(session_id, step, new_nonce(), params)
    loaded.timeline.append(
        "step_requested",
        who.id,
        now,
        {"step": step, "nonce": request.nonce, "terminal": terminal_id, **amount},
    )
    return await store.save(loaded), request


def _full_aad(session_id: str, nonce: str) -> bytes:
    return f"step-full|{session_id}|{nonce}".encode()


def _passes(wf: engine.Workflow, verified: Verified) -> tuple[bool, dict[str, Any]]:
    """The cloud's own reading of a verified result: passed, and the step record's detail."""
    detail: dict[str, Any] = {
        "nonce": verified.nonce,
        "digest": verified.digest,
        "signer": verified.signer,
    }
    masked = verified.masked
    ok = verified.outcome == "passed"
    if verified.step in ("liveness", "active_liveness"):
        detail["score"] = masked.get("score")
        detail["models"] = masked.get("models")
        ok = ok and masked.get("decision") == "pass"
    elif verified.step == "face_match":
        score = masked.get("score")
        detail["score"], detail["threshold"] = score, wf.business.face_match_threshold
        detail["models"] = masked.get("models")
        good = isinstance(score, int | float) and score >= wf.business.face_match_threshold
        ok = ok and good
    elif verified.step == "id_card_read":
        detail.update({k: masked.get(k) for k in ("name", "id_number", "age", "elderly")})
    return ok, detail


async def accept(
    ov: Workbench,
    issuers: Sequence[x509.Certificate],
    terminal_id: str,
    session_id: str,
    result: StepResult,
    now: dt.datetime,
    cards: CardChecks | None = None,
) -> tuple[store.Loaded, Verified, bool]:
    """A terminal's result for its live session ``session_id``: verified, kept on the
    timeline, and the step passed if the result says so. Returns (loaded, verified, passed).

    ``card_read`` and ``pin_entry`` pass only on the HSM's and the core's word
    (``cards``, see ``cloud.workflow.cardcheck``); the returned ``verified`` then carries
    the cloud's reason, and its masked data the reading (``customer_text`` for the screen).
    Without ``cards`` (no HSM or core configured) they never pass: a supervisor overrides.

    StepResultRefused for anything untrustworthy (nothing is recorded on the timeline
    then; the refusal is audited); StepOutOfOrder if the step is no longer the next one."""
    loaded = await get(ov, session_id)
    try:
        verified = check_result(
            result,
            session_id=session_id,
            terminal_id=terminal_id,
            issued=_issued(loaded.timeline, terminal_id),
            answered=_answered(loaded.timeline),
            issuers=issuers,
            now=now,
            revoked=dict(await revoked_serials(now)),
        )
    except StepResultRefused as err:
        await audit.record(
            f"terminal:{terminal_id}", "step_result_refused", session_id, now,
            step=result.step, nonce=result.nonce, reason=str(err),
        )  # fmt: skip
        raise
    return await _record(ov, loaded, terminal_id, verified, now, cards=cards)


async def _record(
    ov: Workbench,
    loaded: store.Loaded,
    terminal_id: str,
    verified: Verified,
    now: dt.datetime,
    extra: Mapping[str, Any] | None = None,
    cards: CardChecks | None = None,
) -> tuple[store.Loaded, Verified, bool]:
    """A verified result onto the timeline (full data sealed), the step passed if it says so
    (a card or PIN step: if the HSM and the core say so)."""
    session_id = loaded.workflow.session_id
    wf = loaded.workflow
    if wf.outcome is not None or wf.next_step != verified.step:
        raise StepOutOfOrder(
            f"session {session_id}: next step is {wf.next_step!r}, a result for "
            f"{verified.step!r} is out of order"
        )
    event = {**verified.evidence(), **(extra or {})}
    if verified.full is not None:
        key = ov.evidence_keys.data_key(ov.suite, session_id)
        sealed = suite_lib.encrypt(
            ov.suite,
            key,
            orjson.dumps(dict(verified.full)),
            aad=_full_aad(session_id, verified.nonce),
        )
        event["sealed_full"] = base64.b64encode(sealed).decode()
    loaded.timeline.append("step_result", f"terminal:{terminal_id}", now, event)
    passed, detail = _passes(wf, verified)
    if verified.step in CARD_STEPS and passed:
        reading = await _card_reading(ov, cards, loaded, terminal_id, verified)
        passed = reading.passed
        detail.update(reading.detail)
        check = {"step": verified.step, "nonce": verified.nonce, "passed": passed,
                 "reason": reading.reason[:200], **_public(reading.detail)}  # fmt: skip
        if reading.customer_text:
            check["customer_text"] = reading.customer_text
        loaded.timeline.append("card_check", "cloud", now, check)
        verified = dataclasses.replace(
            verified,
            reason=reading.reason,
            masked={**verified.masked, **_public(reading.detail),
                    **({"customer_text": reading.customer_text} if reading.customer_text
                       else {})},
        )  # fmt: skip
    if passed:
        loaded.workflow, _ = engine.record_device_step(
            wf, verified.step, f"terminal:{terminal_id}", now, detail
        )
        step_event = {**public_detail(detail), "step": verified.step, "passed": True}
        loaded.timeline.append("step", f"terminal:{terminal_id}", now, step_event)
    return await store.save(loaded), verified, passed


async def accept_before_queue(
    ov: Workbench,
    issuers: Sequence[x509.Certificate],
    terminal_id: str,
    session_id: str,
    request_id: str,
    result: StepResult,
    now: dt.datetime,
) -> tuple[store.Loaded, Verified, bool]:
    """The ID read the customer made before queueing (先刷身份证), taken as this session's
    ``id_card_read`` when the teller reaches that step: the terminal is not asked again.

    Checked as an in-call result bound to its request (``device.check_before_queue``; its
    freshness was checked when the desk received the request), and its nonce (the request
    id) is put on the timeline as issued to the terminal before the call, so the evidence
    shows what the signature was bound to and the nonce can never be answered twice."""
    loaded = await get(ov, session_id)
    verified = check_before_queue(
        result,
        request_id=request_id,
        terminal_id=terminal_id,
        used=_answered(loaded.timeline),
        issuers=issuers,
        now=now,
        fresh=False,
        revoked=dict(await revoked_serials(now)),
    )
    loaded.timeline.append(
        "step_requested",
        f"terminal:{terminal_id}",
        now,
        {"step": "id_card_read", "nonce": request_id, "terminal": terminal_id,
         "before_queue": True},
    )  # fmt: skip
    # the session the signature covers is not this one: say which, for a verifier
    extra = {"before_queue": True, "signed_session": result.session}
    return await _record(ov, loaded, terminal_id, verified, now, extra)


async def override(
    ov: Workbench, session_id: str, step: str, who: engine.Actor, reason: str, now: dt.datetime
) -> store.Loaded:
    """A supervisor passes a device step whose device failed or is missing (audited on the
    timeline; the session goes to full quality review when it closes)."""
    loaded = await get(ov, session_id)
    loaded.workflow, record = engine.override(loaded.workflow, step, who, reason, now)
    loaded.timeline.append("step", who.id, now, {**record.detail, "step": step, "passed": True})
    return await store.save(loaded)


def _id_read(ov: Workbench, loaded: store.Loaded) -> Mapping[str, Any]:
    for event in reversed(loaded.timeline.events):
        if event.kind == "step" and event.data.get("step") == "id_card_read":
            if event.data.get("override"):
                raise StepWaiting("the ID read was overridden: no card data for an online check")
            nonce = event.data.get("nonce")
            break
    else:
        raise StepOutOfOrder("no passed ID card read in this session")
    return _sealed_full(ov, loaded, str(nonce))


#: Steps the cloud decides with the HSM and the core (``cloud.workflow.cardcheck``).
CARD_STEPS = ("card_read", "pin_entry")
#: Reading details the cloud keeps for itself (the step record in the database, which the
#: PIN check and the posting read) and never shows: not to the teller, the supervisor's
#: screens, the customer screen, nor the evidence timeline. The card token finds the
#: account in the core; the PVV is the new PIN's verification value.
PRIVATE_DETAIL = ("pvv", "card_token")


def public_detail(detail: Mapping[str, Any]) -> dict[str, Any]:
    """A step record's detail as people may see it (``PRIVATE_DETAIL`` left out)."""
    return {k: v for k, v in detail.items() if k not in PRIVATE_DETAIL}


_public = public_detail


async def _card_reading(
    ov: Workbench,
    cards: CardChecks | None,
    loaded: store.Loaded,
    terminal_id: str,
    verified: Verified,
) -> Reading:
    if cards is None:
        return Reading(
            False, "no HSM and core are configured: the step waits for a supervisor's override"
        )
    if verified.step == "card_read":
        asked = _asked_amount(loaded.timeline, verified.nonce)
        return await cards.card(verified.full, verified.nonce, asked)
    record = next(
        (r for r in reversed(loaded.workflow.records) if r.step == "card_read" and r.passed),
        None,
    )
    nonce = record.detail.get("nonce") if record is not None else None
    if record is None or record.detail.get("override") or not isinstance(nonce, str):
        return Reading(False, "no verified card read in this session to check the PIN for")
    card = _sealed_full(ov, loaded, nonce)
    mode = loaded.workflow.business.pin_entry
    return await cards.pin(terminal_id, card, record.detail, verified.full, mode)


def _asked_amount(timeline: Timeline, nonce: str) -> int | None:
    """The amount the desk asked the card to cover with ``nonce``, None if it asked none."""
    for event in timeline.events:
        if event.kind == "step_requested" and event.data.get("nonce") == nonce:
            amount = event.data.get("amount_fen")
            return amount if isinstance(amount, int) and not isinstance(amount, bool) else None
    return None


def _sealed_full(ov: Workbench, loaded: store.Loaded, nonce: str) -> Mapping[str, Any]:
    """The full result of the step answered with ``nonce``, unsealed."""
    for event in loaded.timeline.events:
        if (
            event.kind == "step_result"
            and event.data.get("nonce") == nonce
            and "sealed_full" in event.data
        ):
            sealed = base64.b64decode(str(event.data["sealed_full"]))
            key = ov.evidence_keys.data_key(ov.suite, loaded.workflow.session_id)
            plain = suite_lib.decrypt(
                ov.suite, key, sealed, aad=_full_aad(loaded.workflow.session_id, str(nonce))
            )
            data: Mapping[str, Any] = orjson.loads(plain)
            return data
    raise StepOutOfOrder(f"the full result answered with nonce {nonce} is not on the timeline")


async def online_check(
    ov: Workbench,
    identity: IdentityCheck | None,
    session_id: str,
    who: engine.Actor,
    now: dt.datetime,
) -> tuple[store.Loaded, str]:
    """The cloud's own 联网核查 with the name and number of the terminal's signed ID read.

    Returns the workflow and the teller's words. A down service raises StepWaiting (nothing
    recorded but the attempt: ask again, or a supervisor overrides); a 'not found', name
    mismatch or deceased answer fails the step, which rejects the business."""
    loaded = await get(ov, session_id)
    _serving(loaded, who)
    wf = loaded.workflow
    if wf.outcome is not None or wf.next_step != "id_online_check":
        raise StepOutOfOrder(
            f"session {session_id}: next step is {wf.next_step!r}, not 'id_online_check'"
        )
    card = _id_read(ov, loaded)
    try:
        if identity is None:
            raise IdentityServiceDown("no identity gateway is configured for this cloud")
        answer = await identity.check(session_id, str(card["name"]), str(card["id_number"]))
    except (IdentityServiceDown, RequestRefused, AnswerInvalid) as err:
        loaded.timeline.append(
            "id_online_check", "cloud", now, {"outcome": "service_down", "error": str(err)[:200]}
        )
        await store.save(loaded)
        raise StepWaiting(f"{SERVICE_DOWN.teller_text} ({err})") from err
    text = OUTCOMES[answer.outcome]
    detail = {
        "outcome": str(answer.outcome),
        "query_id": answer.query_id,
        "result_text": answer.result_text,
        "customer_text": text.customer_text,
    }
    loaded.timeline.append("id_online_check", "cloud", now, detail)
    if text.passes:
        loaded.workflow, _ = engine.record_device_step(wf, "id_online_check", "cloud", now, detail)
    else:
        loaded.workflow, _ = engine.record_step(
            wf, "id_online_check", engine.Actor("cloud", frozenset()), now, passed=False,
            detail=detail,
        )  # fmt: skip
    step_event = {**detail, "step": "id_online_check", "passed": text.passes}
    loaded.timeline.append("step", "cloud", now, step_event)
    return await store.save(loaded), text.teller_text
