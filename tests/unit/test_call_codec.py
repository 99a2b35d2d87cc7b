"""The call codec both ends share, on messages captured from the real producers.

``tests/fixtures/call/`` holds bytes the terminal's call machine and the desk made before
the two codecs became one (see its README): each parses and turns back into exactly the
same bytes, and today's producers still make them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import orjson
import pytest

from cloud.sessions.grants import TurnConfig
from common.errors import CuntongError, WireError
from common.wire import call as wire
from edge.teller import call
from edge.vision.verdict import VisionResult
from tests.teller.desk_rig import T0, rig

FIXTURES = Path(__file__).parent.parent / "fixtures" / "call"
CAPTURED = sorted(FIXTURES.glob("*.json"))
RID = "5f1c0a9e7b3d4c2a8e6f0b1d3c5a7e9f"


def captured(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


def test_every_message_type_is_captured() -> None:
    kinds = {orjson.loads(p.read_bytes())["type"] for p in CAPTURED}
    assert kinds == {"request", "cancel", "hang_up", "liveness", "rating", "ring_back"} | {
        "step_result",
        "queued", "refused", "connect", "ended", "failed", "guest", "step", "step_outcome",
    }  # fmt: skip


@pytest.mark.parametrize("path", CAPTURED, ids=lambda p: p.stem)
def test_captured_messages_round_trip_to_the_same_bytes(path: Path) -> None:
    data = path.read_bytes()
    parse = wire.parse_session if path.stem.startswith("session-") else wire.parse_desk
    message = parse(data)
    assert message.to_bytes() == data and bytes(message) == data
    assert type(message).parse(data) == message


def test_the_liveness_verdict_is_carried_unchanged() -> None:
    data = captured("session-liveness")
    message = wire.parse_session(data)
    assert isinstance(message, wire.Liveness)
    assert message.verdict == orjson.loads(data)["verdict"]
    # The agent sends "decision"; the desk's badge still reads "passed" (a known bug).
    assert "decision" in message.verdict and "passed" not in message.verdict


def test_the_terminal_machine_makes_the_captured_bytes() -> None:
    customer = {"name": "张三", "id_number": "61010219900101123X"}
    asked = call.step(call.Call(), call.Ask("cash_deposit", RID, "cmn", True, customer), T0)
    assert bytes(asked.actions[0].msg) == captured("session-request-customer")  # type: ignore[union-attr]
    plain = call.step(call.Call(), call.Ask("pension", RID), T0)
    assert bytes(plain.actions[0].msg) == captured("session-request")  # type: ignore[union-attr]
    waiting = call.step(
        asked.call, call.DeskSays(wire.parse_desk(captured("desk-queued-first"))), T0
    )
    long_wait = dataclasses.replace(waiting.call, expected_wait=None)  # nobody on duty
    rung = call.step(long_wait, call.RingBack(), T0)
    assert bytes(rung.actions[0].msg) == captured("session-ring_back")  # type: ignore[union-attr]
    left = call.step(waiting.call, call.CustomerEnds("customer left"), T0)
    assert bytes(left.actions[0].msg) == captured("session-cancel")  # type: ignore[union-attr]
    grant = wire.Grant("s1", "customer", "http://j/janus", "t", "s1", "customer", "teller-t1")
    state = call.step(waiting.call, call.DeskSays(wire.Connect(grant)), T0).call
    state = call.step(state, call.MediaUp(), T0).call
    verdict = VisionResult(
        88, "pass", 70, "cash_deposit", (), {"passive": "minifasnet-v2"},
        ("blink", "turn_left"), 12, "ab" * 32,
    ).to_dict()  # fmt: skip
    checked = call.step(state, call.LivenessDone(verdict), T0)
    assert bytes(checked.actions[0].msg) == captured("session-liveness")  # type: ignore[union-attr]
    hung = call.step(state, call.CustomerEnds(), T0)
    assert bytes(hung.actions[0].msg) == captured("session-hang_up")  # type: ignore[union-attr]
    rated = call.step(hung.call, call.Rated(4), T0)
    assert bytes(rated.actions[0].msg) == captured("session-rating")  # type: ignore[union-attr]


def _same_but_token(made: dict[str, object], name: str, pin: str) -> None:
    """A grant's token is random: everything else, key order included, is as captured,
    plus the room's join PIN last (the grants were captured before rooms had PINs)."""
    want = orjson.loads(captured(name))
    assert made.pop("pin") == pin
    assert list(made) == list(want)
    assert {**made, "token": want["token"]} == want


async def test_the_desk_makes_the_captured_bytes() -> None:
    r = rig("t1", turn=TurnConfig("turn-secret", ("turn:turn.example:3478",)))
    await r.desk.request("s1", "T0042", "cash_deposit", "cmn", elderly=True)
    (queued,) = r.messages("terminal:T0042", "queued")
    first = wire.desk_from_dict({**queued, "request_id": RID})  # as the MQTT link adds it
    assert bytes(first) == captured("desk-queued-first")
    await r.desk.request("s2", "T0043", "cash_deposit", "cmn", False)
    assert bytes(wire.desk_from_dict(r.messages("terminal:T0043", "queued")[-1])) == captured(
        "desk-queued"
    )
    r.advance(5)
    await r.desk.accept("t1", "s1")
    (connect,) = r.messages("terminal:T0042", "connect")
    _same_but_token(connect, "desk-connect", "pin-s1")
    guest = (await r.desk.join_guest("s1", "sup1")).message()
    _same_but_token(guest, "teller-guest-grant", "pin-s1")
    assert bytes(wire.desk_from_dict(r.messages("terminal:T0042", "guest")[-1])) == captured(
        "desk-guest"
    )
    await r.desk.leave_guest("s1", "sup1")
    assert bytes(wire.desk_from_dict(r.messages("terminal:T0042", "guest")[-1])) == captured(
        "desk-guest-left"
    )
    await r.desk.hang_up("s1", "teller ended")
    assert bytes(wire.desk_from_dict(r.messages("terminal:T0042", "ended")[-1])) == captured(
        "desk-ended"
    )
    assert bytes(wire.Refused(RID, "unknown business")) == captured("desk-refused")


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (b'{"type":"queued","session":"s1","position":"2"}', "'position'"),
        (b'{"type":"refused","reason":"x"}', "'request_id'"),
        (b'{"type":"guest","session":"s1","guest":"sup1","present":"yes"}', "'present'"),
        (captured("desk-connect").replace(b'"role":"customer"', b'"role":"boss"'), "'role'"),
        (captured("desk-connect").replace(b',"role":"customer"', b""), "without 'role'"),
        (b'{"type":"ended","session":""}', "'session'"),
        (b'{"type":"request","session":"s1"}', "unknown type 'request'"),
    ],
)
def test_garbage_from_the_desk_is_refused_by_name(payload: bytes, why: str) -> None:
    with pytest.raises(wire.CallError, match=why) as err:
        wire.parse_desk(payload)
    assert isinstance(err.value, WireError) and isinstance(err.value, ValueError)
    assert isinstance(err.value, CuntongError)


def test_a_terminal_cannot_make_what_the_desk_refuses() -> None:
    with pytest.raises(wire.CallError, match="ID number"):
        wire.Customer("张三", "6101")
    with pytest.raises(wire.CallError, match="32 lowercase"):
        wire.Request("XYZ", "pension")
    with pytest.raises(wire.CallError, match="exceeds"):
        wire.Liveness("s1", {"pad": "x" * 17000}).to_bytes()
    with pytest.raises(wire.CallError, match="expected type 'cancel'"):
        wire.Cancel.parse(captured("session-hang_up"))


def test_customer_age_comes_from_the_id_number() -> None:
    card = wire.Customer("王秀英", "110105194912310021")
    assert card.birth_date() == dt.date(1949, 12, 31)
    assert card.age(dt.date(2026, 12, 30)) == 76
    assert card.age(dt.date(2009, 12, 30)) == 59  # the day before the 60th birthday
    assert card.age(dt.date(2009, 12, 31)) == 60
    with pytest.raises(wire.CallError, match="no valid birth date '19491331'"):
        wire.Customer("王秀英", "110105194913310021")


def test_a_grant_carries_its_rooms_pin() -> None:
    grant = wire.Grant("s1", "customer", "http://j/janus", "t", "s1", "customer", "teller-t1",
                       pin="ab" * 32)  # fmt: skip
    data = wire.Connect(grant).to_bytes()
    assert orjson.loads(data)["pin"] == "ab" * 32
    assert wire.parse_desk(data) == wire.Connect(grant)
    assert "pin" not in orjson.loads(captured("desk-connect"))  # a room without one
    with pytest.raises(wire.CallError, match="pin"):
        wire.parse_desk(orjson.dumps({**orjson.loads(data), "pin": 7}))


# -- device steps ------------------------------------------------------------------------
# ``desk-step.json`` is a StepRequest as the desk makes it; ``session-step_result.json`` the
# answer the terminal's own code made (edge.steps: the ID card read over the serial
# simulator, signed by an enrolled test terminal whose CA is ``step-issuer.pem``).


def test_a_captured_step_result_verifies_with_the_clouds_checker() -> None:
    import datetime as dt

    from cryptography import x509

    from cloud.workflow.device import check_result

    request = wire.parse_desk(captured("desk-step"))
    result = wire.parse_session(captured("session-step_result"))
    assert isinstance(request, wire.StepRequest) and isinstance(result, wire.StepResult)
    assert (result.session, result.step, result.nonce) == (
        request.session, request.step, request.nonce,
    )  # fmt: skip
    assert result.full is not None and result.digest == wire.result_digest(result.full)
    assert result.masked["name"] == "王*娜"
    issuer = x509.load_pem_x509_certificate((FIXTURES / "step-issuer.pem").read_bytes())
    verified = check_result(
        result, session_id=request.session, terminal_id="SX-00001",
        issued={request.nonce: request.step}, answered=(), issuers=[issuer],
        now=dt.datetime(2026, 11, 25, 9, 1, tzinfo=dt.UTC),
    )  # fmt: skip
    assert verified.signer == "SX-00001" and verified.outcome == "passed"


def test_the_signature_covers_session_step_nonce_time_digest_and_outcome() -> None:
    result = wire.parse_session(captured("session-step_result"))
    assert isinstance(result, wire.StepResult)
    lines = result.signing_input().split(b"\n")
    shown = wire.result_digest({"reason": result.reason, "masked": result.masked})
    fields = (result.session, result.step, result.nonce, result.time, result.digest,
              result.outcome, shown)  # fmt: skip
    assert lines == [b"cuntong-step-result-v2", *(f.encode() for f in fields)]
    # What a teller sees and the scores the cloud reads are in ``shown``: any change moves it.
    for changed in (
        dataclasses.replace(result, outcome="failed"),
        dataclasses.replace(result, reason=result.reason + "."),
        dataclasses.replace(result, masked={**result.masked, "age": 18}),
    ):
        assert changed.signing_input() != result.signing_input()


@pytest.mark.parametrize(
    ("mutate", "why"),
    [
        (lambda o: {**o, "step": "dance"}, "'step' must be a device step"),
        (lambda o: {**o, "nonce": "123"}, "'nonce' must be 32 lowercase hex"),
        (lambda o: {**o, "time": "2026-11-25T09:00:00"}, "UTC offset"),
        (lambda o: {**o, "outcome": "maybe"}, "'outcome' must be one of"),
        (lambda o: {**o, "digest": "xyz"}, "'digest' must be 64"),
        (lambda o: {k: v for k, v in o.items() if k != "signature"}, "without 'signature'"),
    ],
)
def test_a_malformed_step_result_is_refused_by_name(mutate, why: str) -> None:  # type: ignore[no-untyped-def]
    obj = orjson.loads(captured("session-step_result"))
    with pytest.raises(wire.CallError, match=why):
        wire.parse_session(orjson.dumps(mutate(obj)))
