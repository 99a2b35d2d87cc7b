"""Workflow routes: the teller walks a session's steps; a supervisor authorises.

Device steps (``common.wire.call.DEVICE_STEPS``) are asked of the session's terminal
(``POST …/steps/{step}/ask``) and pass on its signed, verified result (the desk link hands
results to ``cloud.workflow.steps.accept``); ``id_online_check`` is the cloud's own call
(``POST …/steps/id_online_check/run``). Neither can be marked done through ``…/steps``;
when a device fails or is missing a supervisor overrides (``…/steps/{step}/override``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from tortoise.exceptions import IntegrityError

from cloud.api.deps import CoreOrNone, OversightDep, Services, require
from cloud.auth import audit
from cloud.auth.deps import Principal
from cloud.auth.roles import Role, may_view_session
from cloud.catalogue import STEPS, CatalogueError
from cloud.evidence import service as evidence_service
from cloud.evidence.addendum import recording_entry
from cloud.evidence.models import EvidenceRecord
from cloud.evidence.sealer import SealerFailed
from cloud.oversight import Oversight
from cloud.sessions import store as session_store
from cloud.workflow import corepost, engine, service, steps, store
from cloud.workflow.errors import (
    DeviceStepOnly,
    SecondPersonRequired,
    StepInputError,
    WorkflowError,
)
from cloud.workflow.posting import PostingInputError
from common.http import SessionIdPath
from corebank import CoreBankClient

router = APIRouter(prefix="/workflow", tags=["workflow"])
Teller = Annotated[Principal, Depends(require(Role.TELLER))]
Participant = Annotated[
    Principal, Depends(require(Role.TELLER, Role.SUPERVISOR, Role.REVIEWER, Role.AUDITOR))
]


class StartRequest(BaseModel):
    business: str


class StepRequest(BaseModel):
    """A step a person records (a device step only as failed: no typed liveness score)."""

    model_config = {"extra": "forbid"}

    step: str
    passed: bool = True
    detail: dict[str, Any] = Field(default_factory=dict)


class OverrideRequest(BaseModel):
    reason: str = Field(min_length=engine.MIN_OVERRIDE_REASON, max_length=500)


class FinishRequest(BaseModel):
    outcome: engine.Outcome = engine.Outcome.COMPLETED
    #: As read from the ID card / bank card; stored encrypted, shown masked.
    customer: dict[str, str] = Field(default_factory=dict)


class WorkflowPublic(BaseModel):
    session_id: str
    business: str
    risk: str
    teller_id: str
    steps: list[str]
    done: list[dict[str, Any]]
    next_step: str | None
    outcome: str | None
    chain_head: str
    #: What the last action means, in the teller's words (an online check's answer).
    notice: str | None = None
    #: What the business posts to the core at confirm (kind, fields), or None.
    posting: dict[str, Any] | None = None


def _public(
    loaded: store.Loaded, core: CoreBankClient | None = None, notice: str | None = None
) -> WorkflowPublic:
    wf = loaded.workflow
    return WorkflowPublic(
        session_id=wf.session_id,
        business=wf.business.code,
        risk=wf.business.risk,
        teller_id=wf.teller_id,
        steps=list(wf.business.steps),
        done=[
            {
                "step": r.step,
                "actor": r.actor,
                "at": r.at,
                "passed": r.passed,
                # never the card token or a PVV: the record keeps them for the server
                "detail": steps.public_detail(r.detail),
            }
            for r in wf.records
        ],
        next_step=wf.next_step,
        outcome=wf.outcome,
        chain_head=loaded.timeline.head,
        notice=notice,
        # What confirm will post: only where a core is attached (without one, a posting
        # business completes through finish and its timeline says it was not posted).
        posting=(
            {"kind": wf.business.posting.kind, "fields": list(wf.business.posting.fields)}
            if wf.business.posting and core is not None
            else None
        ),
    )


async def _visible(ov: Oversight, session_id: str, who: Principal) -> store.Loaded:
    try:
        loaded = await service.get(ov, session_id)
    except service.NoSuchWorkflow:
        loaded = None
    if loaded is None or not may_view_session(who.account_id, who.roles, loaded.workflow.teller_id):
        raise HTTPException(404, "no such session")
    return loaded


def _http(err: WorkflowError) -> HTTPException:
    if isinstance(err, SecondPersonRequired | DeviceStepOnly):
        return HTTPException(403, str(err))
    if isinstance(err, StepInputError):
        return HTTPException(422, str(err))
    return HTTPException(409, str(err))


@router.post("/{session_id}/start", response_model=WorkflowPublic, status_code=201)
async def start(
    session_id: SessionIdPath, body: StartRequest, ov: OversightDep, who: Teller, core: CoreOrNone
) -> WorkflowPublic:
    try:
        loaded = await service.start(ov, session_id, body.business, who.account_id, ov.clock())
    except CatalogueError as err:
        raise HTTPException(422, str(err)) from err
    except IntegrityError as err:
        raise HTTPException(409, f"session {session_id} already has a workflow") from err
    return _public(loaded, core)


@router.get("/{session_id}", response_model=WorkflowPublic)
async def view(
    session_id: SessionIdPath, ov: OversightDep, who: Participant, core: CoreOrNone
) -> WorkflowPublic:
    return _public(await _visible(ov, session_id, who), core)


@router.post("/{session_id}/steps", response_model=WorkflowPublic)
async def record_step(
    session_id: SessionIdPath,
    body: StepRequest,
    request: Request,
    ov: OversightDep,
    core: CoreOrNone,
    who: Annotated[Principal, Depends(require(Role.TELLER, Role.SUPERVISOR, Role.REVIEWER))],
) -> WorkflowPublic:
    loaded = await _visible(ov, session_id, who)
    actor = engine.Actor(who.account_id, frozenset(who.roles))
    try:
        loaded = await service.record_step(
            ov,
            session_id,
            body.step,
            actor,
            ov.clock(),
            passed=body.passed,
            detail=body.detail,
            loaded=loaded,
        )
    except WorkflowError as err:
        raise _http(err) from err
    except ValueError as err:
        raise HTTPException(422, str(err)) from err
    return _public(loaded, core)


def _known_step(step: str) -> None:
    if step not in STEPS:
        raise HTTPException(422, f"unknown step {step!r} (known: {sorted(STEPS)})")


class AskRequest(BaseModel):
    """What the teller gives with a step request: for ``card_read`` of a business that
    posts an amount (where a core is attached), the amount, which the card's cryptogram
    must cover and the confirm then posts."""

    model_config = {"extra": "forbid"}

    amount_fen: int | None = Field(default=None, gt=0, lt=10**12, strict=True)


@router.post("/{session_id}/steps/{step}/ask", response_model=WorkflowPublic)
async def ask_step(
    session_id: str,
    step: str,
    ov: OversightDep,
    s: Services,
    who: Teller,
    core: CoreOrNone,
    body: AskRequest | None = None,
) -> WorkflowPublic:
    """Ask the session's terminal to perform a device step (a fresh nonce each time)."""
    _known_step(step)
    loaded = await _visible(ov, session_id, who)
    desk = s.desk.desk if s.desk is not None else None
    terminal = desk.terminal_of(session_id) if desk is not None else None
    if desk is None or terminal is None:
        raise HTTPException(409, f"session {session_id} has no terminal in a call to ask")
    actor = engine.Actor(who.account_id, frozenset(who.roles))
    link = s.desk.link if s.desk is not None else None
    if (
        step == "id_card_read"
        and link is not None
        and await link.held_id_read(session_id) is not None
    ):
        # 先刷身份证: the card was read and signed before queueing; take that read (once:
        # if another request took it first, the terminal is asked as usual).
        if loaded.workflow.teller_id != who.account_id:
            raise HTTPException(403, f"only the serving teller takes the ID read of {session_id}")
        if loaded.workflow.next_step != step:
            raise HTTPException(409, f"next step is {loaded.workflow.next_step!r}, not {step!r}")
        try:
            taken_now = await link.use_id_read(desk, session_id)
        except WorkflowError as err:
            raise _http(err) from err
        if taken_now:
            taken = await service.get(ov, session_id)
            return _public(taken, core, notice="the ID card read before queueing was taken")
    amount = body.amount_fen if body is not None else None
    try:
        loaded, request = await steps.ask(
            ov, session_id, step, actor, terminal, ov.clock(), amount,
            amount_required=core is not None,
        )  # fmt: skip
    except WorkflowError as err:
        raise _http(err) from err
    await desk.notify(f"terminal:{terminal}", request.to_dict())
    return _public(loaded, core, notice=f"asked terminal {terminal} for {step}")


@router.post("/{session_id}/steps/id_online_check/run", response_model=WorkflowPublic)
async def online_check(
    session_id: str, ov: OversightDep, who: Teller, core: CoreOrNone
) -> WorkflowPublic:
    """The cloud's own identity check with the data of the terminal's signed ID read.

    A down service answers 503 and the step waits (ask again, or a supervisor overrides);
    a 'not found', mismatch or deceased answer fails the step (the business is rejected)."""
    await _visible(ov, session_id, who)
    actor = engine.Actor(who.account_id, frozenset(who.roles))
    try:
        loaded, words = await steps.online_check(ov, ov.identity, session_id, actor, ov.clock())
    except steps.StepWaiting as err:
        raise HTTPException(503, str(err), headers={"Retry-After": "5"}) from err
    except WorkflowError as err:
        raise _http(err) from err
    return _public(loaded, core, notice=words)


@router.post("/{session_id}/steps/{step}/override", response_model=WorkflowPublic)
async def override_step(
    session_id: str,
    step: str,
    body: OverrideRequest,
    ov: OversightDep,
    core: CoreOrNone,
    who: Annotated[Principal, Depends(require(Role.SUPERVISOR))],
) -> WorkflowPublic:
    """A supervisor (not the serving teller) passes a device step whose device failed or is
    missing, with a written reason; the session goes to full quality review."""
    _known_step(step)
    loaded = await _visible(ov, session_id, who)
    actor = engine.Actor(who.account_id, frozenset(who.roles))
    try:
        loaded = await steps.override(ov, session_id, step, actor, body.reason, ov.clock())
    except WorkflowError as err:
        raise _http(err) from err
    except ValueError as err:
        raise HTTPException(422, str(err)) from err
    # Besides the session's timeline: the audit log, where overrides are looked for.
    await audit.record(
        who.account_id, "step_override", session_id, ov.clock(), step=step, reason=body.reason
    )
    return _public(loaded, core)


#: Largest file a teller desk uploads in one request (a voucher photo, an e-signature).
MAX_FILE_BYTES = 16 * 1024 * 1024


@router.put("/{session_id}/files/{name}", response_model=WorkflowPublic)
async def capture_file(
    session_id: SessionIdPath,
    name: str,
    request: Request,
    ov: OversightDep,
    core: CoreOrNone,
    who: Teller,
    role: Annotated[str, Query(pattern="^(voucher|e_signature|recording)$")],
) -> WorkflowPublic:
    """Upload a voucher image or e-signature (raw body); sealed into the package at finish."""
    loaded = await _visible(ov, session_id, who)
    if loaded.workflow.teller_id != who.account_id:
        raise HTTPException(404, "no such session")
    if int(request.headers.get("content-length") or 0) > MAX_FILE_BYTES:
        raise HTTPException(413, f"at most {MAX_FILE_BYTES} bytes")
    data = await request.body()
    if len(data) > MAX_FILE_BYTES:
        raise HTTPException(413, f"at most {MAX_FILE_BYTES} bytes")
    try:
        loaded = await service.capture_file(
            ov, session_id, name, role, data, who.account_id, ov.clock()
        )
    except WorkflowError as err:
        raise _http(err) from err
    except ValueError as err:
        raise HTTPException(422, str(err)) from err
    return _public(loaded, core)


class NotesRequest(BaseModel):
    text: str = Field(min_length=1, max_length=1000)


@router.post("/{session_id}/notes", response_model=WorkflowPublic)
async def notes(
    session_id: SessionIdPath,
    body: NotesRequest,
    request: Request,
    ov: OversightDep,
    who: Teller,
    core: CoreOrNone,
) -> WorkflowPublic:
    """The serving teller's notes on the session, kept on its evidence timeline (before
    finish seals the package; personal fields in them are not parsed out, so tellers are
    told to write what was done, not the customer's numbers)."""
    loaded = await _visible(ov, session_id, who)
    if loaded.workflow.teller_id != who.account_id:
        raise HTTPException(404, "no such session")
    if await EvidenceRecord.exists(session_id=session_id):
        raise HTTPException(409, f"session {session_id} is already sealed")
    loaded = await service.append_event(
        ov, session_id, "teller_notes", who.account_id, ov.clock(), {"text": body.text}
    )
    return _public(loaded, core)


@router.post("/{session_id}/finish", response_model=WorkflowPublic)
async def finish(
    session_id: SessionIdPath,
    body: FinishRequest,
    request: Request,
    ov: OversightDep,
    who: Teller,
    core: CoreOrNone,
) -> WorkflowPublic:
    """Close the session. A business that posts to the core completes through ``confirm``
    (here ``completed`` answers 409 until the core has confirmed it)."""
    loaded = await _visible(ov, session_id, who)
    if loaded.workflow.teller_id != who.account_id:
        raise HTTPException(404, "no such session")
    recorded = await session_store.recording_of(session_id)
    try:
        loaded = await service.finish(
            ov,
            session_id,
            body.outcome,
            ov.clock(),
            customer=body.customer,
            loaded=loaded,
            require_core=core is not None,
            recording=recording_entry(*recorded) if recorded else None,
        )
    except WorkflowError as err:
        raise _http(err) from err
    except SealerFailed as err:
        raise HTTPException(503, str(err), headers={"Retry-After": "1"}) from err
    # Archived while we sealed: the archiver found no package yet, so add it here.
    if recorded is None and (late := await session_store.recording_of(session_id)):
        await evidence_service.add_recording(ov, session_id, *late, ov.clock())
    return _public(loaded, core)


Account = Annotated[str, Field(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]


class ConfirmRequest(BaseModel):
    """The teller's "done": the fields the business's catalogue posting asks for."""

    #: The core's account reference (businesses without a card step, e.g. card_loss).
    account: Account | None = None
    amount_fen: int | None = Field(None, gt=0, le=10**12)
    #: As read from the ID card / bank card; stored encrypted, shown masked.
    customer: dict[str, str] = Field(default_factory=dict)


class PostingPublic(BaseModel):
    #: none (posts nothing), pending (处理中), applied (成功), refused (失败)
    status: str
    reference: str | None
    reason: str | None
    detail: str | None


class ConfirmPublic(BaseModel):
    posting: PostingPublic
    workflow: WorkflowPublic


def _posting(p: corepost.PostingStatus) -> PostingPublic:
    return PostingPublic(status=p.status, reference=p.reference, reason=p.reason, detail=p.detail)


@router.post("/{session_id}/confirm", response_model=ConfirmPublic)
async def confirm(
    session_id: SessionIdPath, body: ConfirmRequest, ov: OversightDep, who: Teller, core: CoreOrNone
) -> Any:
    """Complete the business: post it to the core (once) when its catalogue entry says so,
    and complete only when the core confirms. 200: completed (or the core refused: see
    ``posting``); 202: no answer from the core yet (处理中, the reconciler settles it and
    the next confirm completes)."""
    loaded = await _visible(ov, session_id, who)
    if loaded.workflow.teller_id != who.account_id:
        raise HTTPException(404, "no such session")
    fields = body.model_dump(exclude={"customer"}, exclude_none=True)
    try:
        done = await corepost.confirm(
            ov, core, session_id, fields, ov.clock(), customer=body.customer, loaded=loaded
        )
    except corepost.CoreUnavailable as err:
        raise HTTPException(503, str(err)) from err
    except PostingInputError as err:
        raise HTTPException(422, str(err)) from err
    except WorkflowError as err:
        raise _http(err) from err
    except SealerFailed as err:
        raise HTTPException(503, str(err), headers={"Retry-After": "1"}) from err
    out = ConfirmPublic(posting=_posting(done.status), workflow=_public(done.loaded, core))
    if done.status.status == corepost.PENDING:
        return JSONResponse(out.model_dump(mode="json"), 202)
    return out


@router.get("/{session_id}/posting", response_model=PostingPublic)
async def posting(session_id: SessionIdPath, ov: OversightDep, who: Participant) -> PostingPublic:
    """Where the session's core posting stands (the teller page polls it while 处理中)."""
    await _visible(ov, session_id, who)
    return _posting(await corepost.status(session_id))
