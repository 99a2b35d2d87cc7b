"""The terminal performs a desk's step request: the call machine hands it to the step
runner, which drives the real ID-card adapter (serial simulator) and publishes a result
signed with the terminal's key; the customer screen shows the step in large type."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import orjson

from cloud.workflow.device import check_result
from common.wire import call as wire
from edge.steps.idcard import IdCardStep
from edge.steps.runner import StepRunner
from edge.teller import call
from edge.teller.call import Call, Phase
from edge.teller.client import TellerClient
from edge.teller.paperwork import Paperwork
from edge.teller.view import STEP_TEXT, view
from firmware_adapters.idcard.adapter import IdCardReader
from firmware_adapters.idcard.simulator import IdCardSimulator, sample_card
from firmware_adapters.pty_server import PtyServer
from provisioning import ca as ca_lib
from tests.steps_rig import enrol, id_reader
from tests.terminal.fakes import FakeRoom

NOW = dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.UTC)
GRANT = wire.Grant("s1", "customer", "http://j/janus", "t", "s1", "customer", "teller-7")
ASK = wire.StepRequest("s1", "id_card_read", "ab" * 16, {"business": "password_reset"})


def test_a_step_request_is_run_only_during_the_call() -> None:
    idle = call.step(Call(), call.DeskSays(ASK), NOW)
    assert idle.actions == () and idle.ignored is not None
    in_call = Call(Phase.IN_CALL, session="s1", grant=GRANT, since=NOW)
    out = call.step(in_call, call.DeskSays(ASK), NOW)
    assert out.actions == (call.RunStep(ASK),) and out.call == in_call
    other = call.step(in_call, call.DeskSays(wire.StepRequest("s2", "liveness", "cd" * 16)), NOW)
    assert other.actions == () and other.ignored is not None  # another session's request


def test_the_customer_screen_says_what_to_do_in_each_step() -> None:
    state = view(Call(Phase.IN_CALL, session="s1", since=NOW), _Paper(), NOW, step="id_card_read")
    assert state["message"] == "请把身份证放在读卡区" and state["step"] == "id_card_read"
    assert set(STEP_TEXT) == set(wire.DEVICE_STEPS)
    # a liveness challenge's own prompt wins over the step's general words
    state = view(Call(Phase.IN_CALL, since=NOW), _Paper(), NOW, prompt="请眨眼", step="liveness")
    assert state["message"] == "请眨眼"


class _Paper:
    screen = form = sign = None


async def test_the_terminal_reads_the_card_and_publishes_a_signed_result(tmp_path: Path) -> None:
    authority = ca_lib.load_or_create(tmp_path / "ca", NOW)
    terminal = enrol(authority, "SX-00001", NOW)
    published: list[bytes] = []

    async def publish(payload: bytes) -> None:
        published.append(payload)

    async def no_capture(kind: str) -> None:
        return None

    client = TellerClient(
        publish,
        lambda grant, on_text, on_event: FakeRoom(grant, on_text, on_event),
        lambda send: Paperwork(send, no_capture),
        lambda: NOW,
    )
    seen: list[str | None] = []
    async with id_reader(tmp_path, sample_card(1)) as handler:
        client.steps = StepRunner(
            lambda: (terminal.key, terminal.certificate_pem), {"id_card_read": handler}, lambda: NOW
        )
        await client.handle(call.Ask("password_reset", "a" * 32))
        await client.on_desk(wire.Queued("s1", 1, 0.0, request_id="a" * 32).to_bytes())
        await client.on_desk(wire.Connect(GRANT).to_bytes())
        await client.handle(call.MediaUp())
        await client.on_desk(ASK.to_bytes())
        for _ in range(200):
            seen.append(client.step)
            if any(b'"step_result"' in p for p in published):
                break
            await asyncio.sleep(0.02)
    result = wire.parse_session(next(p for p in published if b'"step_result"' in p))
    assert isinstance(result, wire.StepResult) and result.outcome == "passed"
    assert "id_card_read" in seen and client.step is None
    assert result.masked["name"] == "张*国"
    verified = check_result(
        result, session_id="s1", terminal_id="SX-00001", issued={ASK.nonce: "id_card_read"},
        answered=(), issuers=[authority.issuing], now=NOW,
    )  # fmt: skip
    assert verified.full is not None and verified.full["name"] == "张建国"
    # Without a signing key the terminal cannot answer: nothing is sent.
    client.steps = None
    before = len(published)
    await client.on_desk(wire.StepRequest("s1", "liveness", "cd" * 16).to_bytes())
    await asyncio.sleep(0.05)
    assert len(published) == before
    assert all(orjson.loads(p)["type"] != "error" for p in published)


async def test_the_card_steps_wait_for_the_customer_to_put_the_card_down(
    tmp_path: Path,
) -> None:
    """The screen says "请把身份证放在读卡区" before the card is there: the step asks the
    empty reader again until the customer puts it down, and fails with the reader's words
    when they never do."""
    card = sample_card(1)
    sim = IdCardSimulator([card])
    sim.remove()
    with PtyServer(sim, tmp_path / "idcard.tty") as server:

        def reader() -> IdCardReader:
            return IdCardReader("idcard", str(server.link), timeout=2.0)

        step = IdCardStep(reader, lambda: dt.date(2026, 11, 25), wait_s=30.0)
        reading = asyncio.create_task(step(ASK))
        await asyncio.sleep(1.0)  # the customer reads the screen first
        assert not reading.done()
        with server.lock:
            sim.insert(card)
        done = await asyncio.wait_for(reading, 20)
        assert done.outcome == "passed" and done.masked["name"] == "张*国"

        with server.lock:
            sim.remove()
        terminal = enrol(ca_lib.load_or_create(tmp_path / "ca", NOW), "SX-00001", NOW)
        runner = StepRunner(
            lambda: (terminal.key, terminal.certificate_pem),
            {"id_card_read": IdCardStep(reader, lambda: dt.date(2026, 11, 25), wait_s=0.5)},
            lambda: NOW,
        )
        result = await runner.run(ASK)
    assert result.outcome == "error" and "CardAbsent" in result.reason, result.reason


def test_signature_and_voucher_steps_sign_what_the_paperwork_delivered() -> None:
    from edge.steps.paperwork import PaperworkStep

    sent: list[str] = []

    async def no_capture(kind: str) -> None:
        return None

    paper = Paperwork(lambda text: sent.append(text) or True, no_capture)
    step = PaperworkStep("e_signature", lambda: paper.delivered)
    ask = wire.StepRequest("s1", "e_signature", "ef" * 16)
    early = asyncio.run(step(ask))
    assert early.outcome == "failed" and "ask for one first" in early.reason
    paper.on_text(sent_sign("F-1"))
    paper.signature("F-1", 600, 200, [[[1.0, 2.0, 0.0], [3.0, 4.0, 16.0]]])
    done = asyncio.run(step(ask))
    assert done.outcome == "passed" and done.masked["strokes"] == 1
    assert len(done.masked["sha256"]) == 64 and done.full == done.masked
    paper.reset()
    assert asyncio.run(step(ask)).outcome == "failed"  # a new call starts empty


def sent_sign(form_id: str) -> str:
    """The teller's ``sign`` message as the data channel carries it."""
    from common.wire import datachannel as channel

    (part,) = channel.encode({"type": "sign", "form_id": form_id})
    return part
