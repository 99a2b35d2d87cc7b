"""Grants: feeds per role, fresh tokens, TURN credentials per participant."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cloud.sessions.grants import TurnConfig, make_grant

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
TURN = TurnConfig("s3cret", ("turn:turn.example:3478?transport=udp",))


def test_feeds_mirror_each_other_and_tokens_are_fresh() -> None:
    customer = make_grant("s1", "customer", "http://j/janus", "T9", "t1", NOW)
    teller = make_grant("s1", "teller", "http://j/janus", "T9", "t1", NOW)
    assert (customer.feed, customer.peer_feed) == ("customer", "teller-t1")
    assert (teller.feed, teller.peer_feed) == ("teller-t1", "customer")
    assert customer.token.startswith("customer-") and teller.token.startswith("teller-")
    assert customer.token != make_grant("s1", "customer", "u", "T9", "t1", NOW).token
    assert customer.ice_servers == () and customer.room == "s1"
    message = teller.message()
    assert message["type"] == "connect" and message["ice_servers"] == []
    with pytest.raises(ValueError):
        make_grant("s1", "auditor", "u", "T9", "t1", NOW)


def test_turn_credentials_name_the_participant() -> None:
    customer = make_grant("s1", "customer", "u", "T9", "t1", NOW, TURN)
    teller = make_grant("s1", "teller", "u", "T9", "t1", NOW, TURN)
    (c,), (t,) = customer.ice_servers, teller.ice_servers
    expiry = int(NOW.timestamp()) + 2 * 3600
    assert c["username"] == f"{expiry}:T9" and t["username"] == f"{expiry}:teller-t1"
    assert c["urls"] == list(TURN.urls) and c["credential"] != t["credential"]
