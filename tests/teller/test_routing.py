"""Routing decisions, table-driven: priority, skills, overflow rings, offers and re-offers."""

from __future__ import annotations

import pytest

from cloud.sessions.errors import RoutingError
from cloud.sessions.routing import Board, Policy, TellerState
from cloud.sessions.skills import DEFAULT_RINGS, Ring, Skills, check_rings

A, B, OFF = TellerState.AVAILABLE, TellerState.BUSY, TellerState.OFFLINE

#: Teller rows: id -> (business proficiencies, languages).
STAFF = {
    "generalist": ({"cash_deposit": 4, "pension": 4, "card_loss": 4, "agri_loan": 3}, {"cmn"}),
    "shaanxi": ({"cash_deposit": 4, "pension": 4}, {"cmn", "zh-shaanxi"}),
    "signer": ({"cash_deposit": 3}, {"cmn", "csl"}),
    "uyghur": ({"cash_deposit": 4}, {"cmn", "ug"}),
    "junior": ({"cash_deposit": 1}, {"cmn"}),
    "depositor": ({"cash_deposit": 4}, {"cmn"}),
}


def board_with(rows: dict[str, tuple[TellerState, float]], policy: Policy | None = None) -> Board:
    """Board with the named STAFF tellers in the given state, available since the given time."""
    board = Board(policy or Policy())
    for teller_id, (state, since) in rows.items():
        businesses, languages = STAFF[teller_id]
        board.add_teller(teller_id, Skills.of(businesses, languages), since)
        board.set_state(teller_id, state, since)
    return board


def serve_order(board: Board, teller_id: str, now: float) -> list[str]:
    """Let one teller take every offer in turn; the order the requests were served in."""
    order = []
    while offers := board.dispatch(now):
        (offer,) = offers
        assert offer.teller_id == teller_id
        board.accept(offer.request_id, now)
        order.append(offer.request_id)
        board.hang_up(teller_id, now)
        board.set_state(teller_id, A, now)
    return order


# (request id, business, arrival, elderly) rows, then the expected service order at t=1000.
PRIORITY_CASES = [
    pytest.param(
        [("plain", "cash_deposit", 0, False), ("old", "cash_deposit", 10, True)],
        ["old", "plain"],
        id="elderly-jumps-ahead",
    ),
    pytest.param(
        [("plain", "cash_deposit", 0, False), ("risky", "card_loss", 500, False)],
        ["risky", "plain"],
        id="high-risk-jumps-further",
    ),
    pytest.param(
        [("plain", "cash_deposit", 0, False), ("old", "cash_deposit", 200, True)],
        ["plain", "old"],
        id="no-starvation-past-head-start",
    ),
    pytest.param(
        [("old", "pension", 0, True), ("risky", "card_loss", 0, False)],
        ["risky", "old"],
        id="high-risk-before-elderly",
    ),
    pytest.param(
        [("risky", "card_loss", 0, False), ("old-risky", "card_loss", 100, True)],
        ["old-risky", "risky"],
        id="head-starts-add-up",
    ),
    pytest.param(
        [("a", "cash_deposit", 0, False), ("b", "cash_deposit", 0, False)],
        ["a", "b"],
        id="fifo-on-ties",
    ),
]


def test_transferred_customer_keeps_a_head_start() -> None:
    board = board_with({"generalist": (A, 0)})
    board.enqueue("waiting", "cash_deposit", "cmn", 0)
    board.enqueue("handed-on", "cash_deposit", "cmn", 250, transferred=True)
    board.enqueue("later", "cash_deposit", "cmn", 350, transferred=True)
    assert [r.id for r in board.waiting()] == ["handed-on", "waiting", "later"]


@pytest.mark.parametrize(("rows", "expected"), PRIORITY_CASES)
def test_priority_order(rows: list[tuple[str, str, float, bool]], expected: list[str]) -> None:
    board = board_with({"generalist": (A, 0)})
    for request_id, business, arrived, elderly in rows:
        board.enqueue(request_id, business, "cmn", arrived, elderly=elderly)
    assert [r.id for r in board.waiting()] == expected
    assert serve_order(board, "generalist", 1000) == expected


# Available tellers (with idle-since), the request, and who gets the offer at t=0.
CHOICE_CASES = [
    pytest.param(
        {"generalist": 1, "depositor": 5},
        ("cash_deposit", "cmn"),
        "generalist",
        id="longest-idle-wins",
    ),
    pytest.param(
        {"generalist": 5, "depositor": 1},
        ("cash_deposit", "cmn"),
        "depositor",
        id="longest-idle-wins-other-way",
    ),
    pytest.param(
        {"depositor": 1, "generalist": 5},
        ("pension", "cmn"),
        "generalist",
        id="only-skilled-teller",
    ),
    pytest.param(
        {"generalist": 1, "shaanxi": 5},
        ("pension", "zh-shaanxi"),
        "shaanxi",
        id="dialect-speaker-in-ring-0",
    ),
    pytest.param(
        {"generalist": 1, "signer": 5}, ("cash_deposit", "csl"), "signer", id="sign-language"
    ),
    pytest.param(
        {"junior": 1, "depositor": 5},
        ("cash_deposit", "cmn"),
        "depositor",
        id="proficiency-3-needed-in-ring-0",
    ),
    pytest.param({"generalist": 1}, ("cash_deposit", "csl"), None, id="never-sign-to-non-signer"),
    pytest.param({"depositor": 1}, ("insurance", "cmn"), None, id="nobody-for-business"),
]


@pytest.mark.parametrize(("idle", "wanted", "expected"), CHOICE_CASES)
def test_teller_choice(
    idle: dict[str, float], wanted: tuple[str, str], expected: str | None
) -> None:
    board = board_with({t: (A, since) for t, since in idle.items()})
    board.enqueue("r", *wanted, now=10)
    offers = board.dispatch(10)
    assert [o.teller_id for o in offers] == ([expected] if expected else [])


# Overflow: available tellers, busy (on-duty) tellers, the request, the wait, who is offered.
OVERFLOW_CASES = [
    pytest.param(
        ["junior"],
        ["depositor"],
        ("cash_deposit", "cmn"),
        29,
        None,
        id="low-proficiency-waits-ring-1",
    ),
    pytest.param(
        ["junior"],
        ["depositor"],
        ("cash_deposit", "cmn"),
        30,
        "junior",
        id="low-proficiency-after-30s",
    ),
    pytest.param(
        ["generalist"],
        ["shaanxi"],
        ("pension", "zh-shaanxi"),
        89,
        None,
        id="dialect-waits-for-dialect-speaker",
    ),
    pytest.param(
        ["generalist"],
        ["shaanxi"],
        ("pension", "zh-shaanxi"),
        90,
        "generalist",
        id="dialect-falls-back-to-mandarin",
    ),
    pytest.param(
        ["depositor"],
        ["uyghur"],
        ("cash_deposit", "ug"),
        179,
        None,
        id="minority-language-keeps-longer",
    ),
    pytest.param(
        ["depositor"],
        ["uyghur"],
        ("cash_deposit", "ug"),
        180,
        "depositor",
        id="minority-language-widest-ring",
    ),
    pytest.param(
        ["depositor"], ["generalist"], ("pension", "cmn"), 179, None, id="business-group-waits"
    ),
    pytest.param(
        ["depositor"],
        ["generalist"],
        ("pension", "cmn"),
        180,
        "depositor",
        id="business-group-widest-ring",
    ),
    pytest.param(
        ["generalist"],
        ["signer"],
        ("cash_deposit", "csl"),
        10_000,
        None,
        id="sign-language-never-overflows",
    ),
    # Nobody on duty could serve rings 0-1, so they are skipped at once.
    pytest.param(
        ["generalist"], [], ("pension", "zh-shaanxi"), 0, "generalist", id="unstaffed-rings-skipped"
    ),
    pytest.param(
        ["junior"], [], ("cash_deposit", "cmn"), 0, "junior", id="unstaffed-ring-0-skipped"
    ),
]


@pytest.mark.parametrize(("free", "busy", "wanted", "waited", "expected"), OVERFLOW_CASES)
def test_overflow_rings(
    free: list[str],
    busy: list[str],
    wanted: tuple[str, str],
    waited: float,
    expected: str | None,
) -> None:
    board = board_with({**{t: (A, 0) for t in free}, **{t: (B, 0) for t in busy}})
    board.enqueue("r", *wanted, now=1000)
    offers = board.dispatch(1000 + waited)
    assert [o.teller_id for o in offers] == ([expected] if expected else [])


def test_many_requests_many_tellers_one_pass() -> None:
    board = board_with({"generalist": (A, 3), "shaanxi": (A, 1), "signer": (A, 2)})
    board.enqueue("deaf", "cash_deposit", "csl", 5)
    board.enqueue("dialect", "pension", "zh-shaanxi", 6)
    board.enqueue("plain", "cash_deposit", "cmn", 7)
    board.enqueue("extra", "cash_deposit", "cmn", 8)
    got = {o.request_id: o.teller_id for o in board.dispatch(10)}
    assert got == {"deaf": "signer", "dialect": "shaanxi", "plain": "generalist"}
    assert [r.id for r in board.waiting()] == ["extra"]
    assert board.dispatch(11) == []  # everyone holds an offer


def test_decline_goes_to_next_teller_and_not_back_immediately() -> None:
    board = board_with({"generalist": (A, 1), "depositor": (A, 2)})
    board.enqueue("r1", "cash_deposit", "cmn", 10)
    (first,) = board.dispatch(10)
    assert first.teller_id == "generalist"
    board.decline("r1", 12)
    (second,) = board.dispatch(12)
    assert second.teller_id == "depositor"
    board.decline("r1", 13)
    # Both declined: nobody until the cooldown (60 s) ends, then longest idle again.
    assert board.dispatch(12 + 59) == []
    (third,) = board.dispatch(12 + 60)
    assert third.teller_id == "generalist"
    assert board.requests["r1"].offers == 3


def test_declined_request_keeps_its_place() -> None:
    board = board_with({"generalist": (A, 1)})
    board.enqueue("first", "cash_deposit", "cmn", 10)
    board.enqueue("second", "cash_deposit", "cmn", 11)
    board.dispatch(12)
    board.decline("first", 13)
    assert [r.id for r in board.waiting()] == ["first", "second"]
    # The decliner skips "first" during the cooldown but may take "second".
    (offer,) = board.dispatch(14)
    assert offer.request_id == "second"


def test_offer_timeout_holds_teller_then_breaks_after_three_misses() -> None:
    pol = Policy(offer_timeout=20, no_answer_delay=15, max_missed=3, reoffer_cooldown=1)
    board = board_with({"generalist": (A, 0)}, pol)
    for n in range(3):
        board.enqueue(f"r{n}", "cash_deposit", "cmn", 100 * n)
        (offer,) = board.dispatch(100 * n)
        assert offer.expires == 100 * n + 20
        assert board.tick(100 * n + 19) == ([], [])
        expired, _ = board.tick(100 * n + 20)
        assert expired == [offer]
        assert board.dispatch(100 * n + 34) == []  # held back after no answer
    assert board.tellers["generalist"].state is TellerState.BREAK
    assert board.dispatch(400) == []
    board.set_state("generalist", A, 400)
    assert len(board.dispatch(400)) == 1
    assert board.tellers["generalist"].missed == 0


def test_accept_resets_misses_and_makes_busy_then_wrap_up_ends() -> None:
    board = board_with({"generalist": (A, 0)}, Policy(wrap_up_limit=120))
    board.enqueue("r", "cash_deposit", "cmn", 0)
    board.dispatch(0)
    board.accept("r", 5)
    t = board.tellers["generalist"]
    assert (t.state, "r" in board.requests) == (B, False)
    board.hang_up("generalist", 300)
    assert t.state is TellerState.WRAP_UP
    assert board.tick(419) == ([], [])
    assert board.tick(420) == ([], ["generalist"])
    assert (t.state, t.idle_since) == (A, 420)


def test_abandon_and_logout_release_offers() -> None:
    board = board_with({"generalist": (A, 0), "depositor": (A, 1)})
    board.enqueue("r1", "cash_deposit", "cmn", 0)
    board.enqueue("r2", "cash_deposit", "cmn", 1)
    board.dispatch(2)
    board.abandon("r1", 3)
    assert "r1" not in board.requests and board.offer_to("generalist") is None
    cancelled = board.set_state("depositor", OFF, 4)
    assert cancelled is not None and cancelled.request_id == "r2"
    assert [r.id for r in board.waiting()] == ["r2"]
    (offer,) = board.dispatch(5)
    assert offer.teller_id == "generalist"


@pytest.mark.parametrize(
    ("call", "args"),
    [
        ("accept", ("nope", 0)),
        ("decline", ("nope", 0)),
        ("abandon", ("nope", 0)),
        ("set_state", ("ghost", A, 0)),
        ("hang_up", ("generalist", 0)),
        ("enqueue", ("r", "mortgage", "cmn", 0)),
        ("enqueue", ("r", "cash_deposit", "klingon", 0)),
    ],
)
def test_refused_operations(call: str, args: tuple[object, ...]) -> None:
    board = board_with({"generalist": (A, 0)})
    with pytest.raises(RoutingError):
        getattr(board, call)(*args)


def test_duplicates_refused() -> None:
    board = board_with({"generalist": (A, 0)})
    board.enqueue("r", "cash_deposit", "cmn", 0)
    with pytest.raises(RoutingError):
        board.enqueue("r", "cash_deposit", "cmn", 0)
    with pytest.raises(RoutingError):
        board.add_teller("generalist", Skills.of({}, {"cmn"}), 0)


def test_rings_must_widen_and_skills_validate() -> None:
    check_rings(DEFAULT_RINGS)
    with pytest.raises(ValueError, match="widen"):
        check_rings((Ring(0, 1), Ring(30, 3)))
    with pytest.raises(ValueError, match="open at 0"):
        Policy(rings=(Ring(10, 3),))
    with pytest.raises(ValueError, match="unknown business"):
        Skills.of({"mortgage": 3}, {"cmn"})
    with pytest.raises(ValueError, match="1-5"):
        Skills.of({"pension": 7}, {"cmn"})


def test_ring_skip_follows_who_is_on_duty() -> None:
    board = board_with({"generalist": (A, 0), "shaanxi": (B, 0)})
    board.enqueue("r", "pension", "zh-shaanxi", 0)
    assert board.dispatch(10) == []  # the dialect speaker is on duty, just busy: wait
    board.set_state("shaanxi", OFF, 20)  # gone home: nobody left for rings 0-1
    (offer,) = board.dispatch(20)
    assert (offer.teller_id, offer.ring) == ("generalist", 2)
    board.decline("r", 21)
    board.remove_teller("generalist", 22)
    assert "generalist" not in board.tellers
    board.add_teller("late", Skills.of({"pension": 5}, {"zh-shaanxi"}), 100)
    board.set_state("late", A, 100)
    (offer,) = board.dispatch(100)
    assert (offer.teller_id, offer.ring) == ("late", 2)
