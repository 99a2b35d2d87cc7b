"""The session transition table: every allowed path, every refused event, the records."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from cloud.sessions import state as st
from cloud.sessions.errors import ClockWentBack, InvalidTransition, SessionError
from cloud.sessions.state import Event, State

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def run(events: list[Event], step: float = 10.0) -> st.Session:
    s = st.new_session("s1", T0)
    for i, ev in enumerate(events, start=1):
        s, _ = st.apply(s, ev, T0 + timedelta(seconds=step * i), cause=f"step {i}")
    return s


@pytest.mark.parametrize(
    ("events", "final"),
    [
        ([Event.ENQUEUE, Event.OFFER, Event.ACCEPT, Event.HANG_UP, Event.CLOSE], State.CLOSED),
        ([Event.ENQUEUE, Event.ABANDON], State.ABANDONED),
        ([Event.ABANDON], State.ABANDONED),
        ([Event.ENQUEUE, Event.OFFER, Event.DECLINE], State.QUEUED),
        ([Event.ENQUEUE, Event.OFFER, Event.OFFER_TIMEOUT, Event.OFFER], State.OFFERED),
        ([Event.ENQUEUE, Event.OFFER, Event.ABANDON], State.ABANDONED),
        ([Event.ENQUEUE, Event.OFFER, Event.ACCEPT, Event.FAIL], State.FAILED),
        ([Event.ENQUEUE, Event.OFFER, Event.ACCEPT, Event.TRANSFER], State.TRANSFERRED),
        (
            [Event.ENQUEUE, Event.OFFER, Event.ACCEPT, Event.TRANSFER, Event.ENQUEUE, Event.OFFER],
            State.OFFERED,
        ),
        ([Event.FAIL], State.FAILED),
    ],
)
def test_paths_reach_expected_state(events: list[Event], final: State) -> None:
    s = run(events)
    assert s.state is final
    assert len(s.history) == len(events) + 1
    # Each record chains from the previous one's target state.
    for prev, rec in itertools.pairwise(s.history):
        assert rec.from_state is prev.to_state
        assert rec.at > prev.at


@pytest.mark.parametrize("state", list(State))
def test_every_unlisted_event_is_refused(state: State) -> None:
    s = st.Session("s1", state, (st.Transition("s1", T0, Event.REQUEST, None, state),))
    for ev in Event:
        if (state, ev) in st.TRANSITIONS:
            continue
        with pytest.raises(InvalidTransition) as info:
            st.apply(s, ev, T0)
        assert info.value.state == state and info.value.event == ev
        assert isinstance(info.value, SessionError)


def test_terminal_states_have_no_exit() -> None:
    for state in st.TERMINAL:
        assert st.allowed_events(state) == frozenset()
    assert st.allowed_events(State.OFFERED) == {
        Event.ACCEPT,
        Event.DECLINE,
        Event.OFFER_TIMEOUT,
        Event.ABANDON,
        Event.FAIL,
    }


def test_record_carries_time_cause_and_teller() -> None:
    s = run([Event.ENQUEUE, Event.OFFER])
    at = T0 + timedelta(minutes=1)
    s2, rec = st.apply(s, Event.ACCEPT, at, cause="teller clicked accept", teller_id="t-07")
    assert rec == st.Transition(
        "s1", at, Event.ACCEPT, State.OFFERED, State.CONNECTED, "teller clicked accept", "t-07"
    )
    assert s2.history[-1] == rec
    assert s.state is State.OFFERED  # the old value is untouched


def test_time_must_not_go_back_and_must_be_aware() -> None:
    s = run([Event.ENQUEUE])
    with pytest.raises(ClockWentBack):
        st.apply(s, Event.OFFER, T0)
    with pytest.raises(ValueError, match="naive"):
        st.apply(s, Event.OFFER, datetime(2026, 11, 25, 10, 0))  # noqa: DTZ001
    with pytest.raises(ValueError, match="naive"):
        st.new_session("s2", datetime(2026, 11, 25, 10, 0))  # noqa: DTZ001


def test_wait_and_handle_times() -> None:
    s = run([Event.ENQUEUE, Event.OFFER, Event.DECLINE, Event.OFFER, Event.ACCEPT])
    assert st.wait_time(s) == timedelta(seconds=50)
    assert st.handle_time(s) is None
    s, _ = st.apply(s, Event.HANG_UP, T0 + timedelta(seconds=290))
    s, _ = st.apply(s, Event.CLOSE, T0 + timedelta(seconds=350))
    assert st.handle_time(s) == timedelta(seconds=300)
    assert st.wait_time(run([Event.ENQUEUE, Event.ABANDON])) is None


def test_replay_rebuilds_and_rechecks() -> None:
    s = run([Event.ENQUEUE, Event.OFFER, Event.ACCEPT, Event.HANG_UP])
    # Records as they come back from a database: enum values as plain strings.
    raw = [
        st.Transition(r.session_id, r.at, str(r.event), r.from_state, r.to_state, r.cause)  # type: ignore[arg-type]
        for r in s.history
    ]
    again = st.replay("s1", raw)
    assert again.state is State.WRAP_UP
    assert [r.to_state for r in again.history] == [r.to_state for r in s.history]
    tampered = [*s.history[:2], s.history[3]]  # skips the offer
    with pytest.raises(InvalidTransition):
        st.replay("s1", tampered)
    with pytest.raises(ValueError, match="start with a request"):
        st.replay("s1", list(s.history[1:]))
