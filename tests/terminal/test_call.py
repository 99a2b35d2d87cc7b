"""The call state machine and its wire formats, directly (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from common.wire import call as wire
from edge.teller import call
from edge.teller.call import Call, Phase
from edge.teller.view import GUEST_TEXT, message
from tests.steps_rig import agent_verdict

T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
RID = "a" * 32
GRANT = {
    "type": "connect",
    "session": "s1",
    "role": "customer",
    "janus_url": "http://127.0.0.1:8088/janus",
    "token": "tok",
    "room": "s1",
    "feed": "customer",
    "peer_feed": "teller-7",
    "ice_servers": [{"urls": "turn:turn.example:3478", "username": "u", "credential": "c"}],
}


def run(events: list[call.Event], start: Call | None = None) -> tuple[Call, list[call.Action]]:
    state, actions = start or Call(), []
    for i, event in enumerate(events):
        out = call.step(state, event, T0 + timedelta(seconds=i))
        state = out.call
        actions.extend(out.actions)
    return state, actions


def says(msg: dict[str, object]) -> call.DeskSays:
    """A desk message as the terminal gets it: through the call codec."""
    return call.DeskSays(wire.desk_from_dict(msg))


def desk(**msg: object) -> call.DeskSays:
    return says(dict(msg))


def sent(actions: list[call.Action]) -> list[str]:
    return [a.msg.type for a in actions if isinstance(a, call.Send)]


ASK = call.Ask("pension", RID, elderly=True)
QUEUED = desk(type="queued", request_id=RID, session="s1", position=2, expected_wait=90.0)


def test_a_whole_call() -> None:
    state, actions = run([ASK, QUEUED])
    assert (state.phase, state.session, state.position, state.expected_wait) == (
        Phase.WAITING,
        "s1",
        2,
        90.0,
    )
    state, more = run([says(GRANT), call.MediaUp()], state)
    assert state.phase is Phase.IN_CALL and state.connected_once
    assert [type(a) for a in more] == [call.Join]
    assert more[0].grant.ice_servers[0]["username"] == "u"  # type: ignore[union-attr]
    state, more = run([call.LivenessDone({"score": 90}), call.CustomerEnds()], state)
    assert sent(more) == ["liveness", "hang_up"] and isinstance(more[-1], call.Leave)
    assert state.phase is Phase.RATING
    state, more = run([call.Rated(5)], state)
    assert state.phase is Phase.IDLE
    assert more == [call.Send(wire.Rating("s1", 5))]
    assert sent(actions) == ["request"]


def test_link_lost_rejoins_with_the_same_grant_once() -> None:
    state, _ = run([ASK, QUEUED, says(GRANT), call.MediaUp()])
    state, actions = run([call.LinkLost(), call.LinkLost()], state)
    assert state.phase is Phase.RECONNECTING and state.notice == "link_lost"
    assert actions == [call.Rejoin(wire.Grant.from_message(GRANT))]  # one, not two
    state, _ = run([call.MediaUp()], state)
    assert state.phase is Phase.IN_CALL and state.notice is None


def test_a_transfer_follows_the_next_teller() -> None:
    state, _ = run([ASK, QUEUED, says(GRANT), call.MediaUp()])
    state, actions = run([says({**GRANT, "peer_feed": "teller-9"})], state)
    assert state.phase is Phase.IN_CALL
    assert [a.grant.peer_feed for a in actions] == ["teller-9"]  # type: ignore[union-attr]


def test_the_customer_is_told_while_a_supervisor_listens_in() -> None:
    state, _ = run([ASK, QUEUED, says(GRANT), call.MediaUp()])
    assert message(state) != GUEST_TEXT
    joined = desk(type="guest", session="s1", guest="sup1", present=True)
    second = desk(type="guest", session="s1", guest="sup2", present=True)
    state, actions = run([joined, second], state)
    assert state.guests == ("sup1", "sup2") and actions == []
    assert message(state) == GUEST_TEXT
    state, _ = run([desk(type="guest", session="s1", guest="sup1", present=False)], state)
    assert state.guests == ("sup2",)
    state, _ = run([desk(type="guest", session="s1", guest="sup2", present=False)], state)
    assert state.guests == () and message(state) != GUEST_TEXT
    # Not in a call: ignored; the message is part of the desk's contract.
    idle, _ = run([ASK, QUEUED, joined])
    assert idle.guests == ()
    assert wire.parse_desk(joined.msg.to_bytes()) == joined.msg


def test_desk_ends_and_fails() -> None:
    state, _ = run([ASK, QUEUED, says(GRANT), call.MediaUp()])
    ended, actions = run([desk(type="ended", session="s1", cause="teller ended")], state)
    assert (ended.phase, ended.notice, ended.cause) == (Phase.RATING, "ended", "teller ended")
    assert actions == [call.Leave()]
    # Failed before any media flowed: nothing to rate, straight back with a notice.
    state, _ = run([ASK, QUEUED, says(GRANT)])
    failed, _ = run([desk(type="failed", session="s1", cause="media")], state)
    assert (failed.phase, failed.notice) == (Phase.IDLE, "failed")


def test_refused_and_messages_for_others_are_ignored() -> None:
    state, _ = run([ASK, desk(type="refused", request_id=RID, reason="unknown business")])
    assert (state.phase, state.notice) == (Phase.IDLE, "refused")
    state, _ = run([ASK, QUEUED])
    other = call.step(state, desk(type="ended", session="other", cause="x"), T0)
    assert other.call == state and other.ignored is not None
    stray = call.step(Call(), call.MediaUp(), T0)
    assert stray.ignored is not None and stray.actions == ()


def test_cancel_before_and_after_the_desk_named_the_session() -> None:
    state, actions = run([ASK, QUEUED, call.CustomerEnds("customer left")])
    assert state.phase is Phase.IDLE and sent(actions) == ["request", "cancel"]
    assert actions[-1].msg.to_dict() == {
        "type": "cancel",
        "session": "s1",
        "cause": "customer left",
    }  # type: ignore[union-attr]
    # Gave up before the desk answered: cancelled as soon as it names the session.
    state, actions = run([ASK, call.CustomerEnds()])
    assert state.cancel_pending and sent(actions) == ["request"]
    state, actions = run([QUEUED], state)
    assert sent(actions) == ["cancel"] and not state.cancel_pending
    # A new customer can ask again at once.
    state, actions = run([call.Ask("card_loss", "b" * 32)], state)
    assert state.phase is Phase.WAITING and sent(actions) == ["request"]


def test_asking_twice_is_ignored() -> None:
    state, _ = run([ASK])
    out = call.step(state, call.Ask("card_loss", "c" * 32), T0)
    assert out.call == state and out.ignored is not None


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[1]",
        b'{"type":"dance","session":"s"}',
        b'{"type":"queued"}',
        b'{"type":"connect","session":"s","janus_url":"u","token":"t","room":"r","feed":"f"}',
        b'{"type":"connect","session":"s","janus_url":"u","token":"t","room":"r","feed":"f",'
        b'"peer_feed":"p","ice_servers":"nope"}',
        b"{" + b" " * (17 * 1024) + b"}",
    ],
)
def test_garbage_from_the_desk_is_refused(payload: bytes) -> None:
    with pytest.raises(wire.CallError):
        wire.parse_desk(payload)


def test_session_messages_round_trip() -> None:
    customer = wire.Customer("张三", "61010219900101123X")  # the desk refuses a short ID
    for msg in (
        wire.Request(RID, "pension", "cmn", True, customer),
        wire.Cancel("s1"),
        wire.HangUp("s1"),
        wire.Liveness("s1", agent_verdict(0.88).masked),
        wire.Rating("s1", 4),
    ):
        assert wire.parse_session(msg.to_bytes()) == msg
    assert wire.parse_desk(wire.desk_from_dict(GRANT).to_bytes()).to_dict() == GRANT
    with pytest.raises(wire.CallError):
        wire.Rating("s1", 6)


def test_link_rate_follows_loss_within_the_configured_link() -> None:
    from edge.teller import linkrate
    from edge.vision.roi import encoder_settings

    rate, seen = 400.0, []
    for loss in (0.3, 0.3, 0.3, 0.05, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0):
        rate = linkrate.next_rate(rate, 400, loss)
        seen.append(rate)
    assert seen[2] < 250 and seen[3] == seen[2]  # cut hard, then hold on light loss
    assert seen[-1] == 400  # grows back, never past the link
    assert linkrate.next_rate(130, 400, 0.45) == linkrate.FLOOR_KBPS
    assert linkrate.next_rate(300, 400, 0.9) == 300  # an outage, not congestion: hold
    assert linkrate.next_rate(400, 400, 0.0, remb_kbps=250) == 250
    small, big = encoder_settings(seen[2]), encoder_settings(400)
    assert small.width * small.fps < big.width * big.fps  # the picture follows the rate
    assert linkrate.worth_refit(400, 300) and not linkrate.worth_refit(400, 380)
    with pytest.raises(ValueError):
        linkrate.next_rate(400, 400, 1.5)
    # On a link known to lose 3%, 3-4% loss is no congestion: the rate grows back.
    assert linkrate.next_rate(200, 400, 0.035, expected_loss=0.03) > 200
    assert linkrate.next_rate(200, 400, 0.035) == 200
    assert linkrate.next_rate(200, 400, 0.2, expected_loss=0.03) < 200
