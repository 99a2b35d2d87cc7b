"""The fleet's pure cores: selectors, region tree, shadow deltas, command lifecycle."""

from __future__ import annotations

import datetime as dt

import pytest

from common.wire import shadow as sh
from fleet import lifecycle as lc
from fleet.query import Facts, Selector, region_tree

T0 = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)


def facts(tid: str, county: str = "陈仓区", online: bool = True, **kw: object) -> Facts:
    values: dict[str, object] = {
        "id": tid,
        "region": {"province": "陕西省", "city": "宝鸡市", "county": county, "village": "东风村"},
        "hw_model": "ZN-E100",
        "versions": {"agent": "0.1.0", "model.face": "2.0"},
        "tags": frozenset({"pilot"}),
        "online": online,
        **kw,
    }
    return Facts(**values)  # type: ignore[arg-type]


def test_selector_round_trips_and_matches() -> None:
    raw = {"city": "宝鸡市", "versions": {"model.face": "2.0"}, "tags": ["pilot"], "online": True}
    sel = Selector.from_dict(raw)
    assert Selector.from_dict(sel.to_dict()) == sel
    assert sel.matches(facts("A"))
    assert not sel.matches(facts("B", online=False))
    assert not sel.matches(facts("C", versions={"agent": "0.1.0", "model.face": "1.0"}))
    assert not sel.matches(facts("D", tags=frozenset()))
    assert Selector(q="A").matches(facts("A-1")) and not Selector(q="A").matches(facts("B-1"))
    assert Selector(versions={"agent": "0.1.0"}).column_filters() == {"agent_version": "0.1.0"}


@pytest.mark.parametrize(
    "raw", [{"cty": "x"}, {"tags": "pilot"}, {"online": "yes"}, {"versions": {"a": 1}}]
)
def test_selector_refuses_typos_and_bad_types(raw: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Selector.from_dict(raw)


def test_region_tree_counts_each_level() -> None:
    tree = region_tree([facts("A"), facts("B", online=False), facts("C", county="渭滨区")])
    assert (tree.total, tree.online) == (3, 2)
    city = tree.children["陕西省"].children["宝鸡市"]
    assert {k: (v.total, v.online) for k, v in city.children.items()} == {
        "陈仓区": (2, 1),
        "渭滨区": (1, 1),
    }
    assert tree.to_dict()["children"][0]["level"] == "province"


def test_shadow_delta_versions_and_stale_reports() -> None:
    s = sh.set_desired(sh.Shadow(), {"volume": 5, "screen": {"brightness": 80, "lang": "zh"}})
    assert s.desired_version == 1
    assert sh.set_desired(s, {"volume": 5}) is s  # no change, no new version
    s = sh.report(s, {"volume": 3, "screen": {"brightness": 80, "lang": "en"}}, 0)
    assert sh.pending_delta(s) == {"volume": 5, "screen": {"lang": "zh"}}
    s2 = sh.set_desired(s, {"volume": None})
    assert s2.desired_version == 2 and "volume" not in s2.desired
    synced = sh.report(s2, sh.merge(s2.reported, sh.pending_delta(s2)), 2)
    assert sh.in_sync(synced)
    assert sh.report(synced, {"volume": 1}, 1) is synced  # an old reply arriving late


def test_command_waits_while_offline_then_expires() -> None:
    c = lc.new("reboot", T0, dt.timedelta(hours=2))
    assert lc.tick(c, T0 + dt.timedelta(hours=1)).state is lc.State.QUEUED
    assert lc.tick(c, T0 + dt.timedelta(hours=2)).state is lc.State.EXPIRED


def test_command_delivery_reply_and_timeout() -> None:
    c = lc.new("ping", T0)
    sent = lc.deliver(c, T0 + dt.timedelta(seconds=1))
    issued, expires = lc.signature_window(sent, T0 + dt.timedelta(seconds=1))
    assert expires - issued <= dt.timedelta(minutes=10)
    assert lc.on_reply(sent, True, T0 + dt.timedelta(seconds=2)).state is lc.State.SUCCEEDED
    assert lc.on_reply(sent, False, T0 + dt.timedelta(seconds=2)).state is lc.State.FAILED
    assert lc.tick(sent, T0 + dt.timedelta(seconds=11)).state is lc.State.TIMED_OUT
    with pytest.raises(lc.TransitionError):
        lc.on_reply(c, True, T0)
    with pytest.raises(lc.TransitionError):
        lc.cancel(sent, T0)
    with pytest.raises(ValueError):
        lc.new("self_destruct", T0)


def test_long_lived_command_gets_a_short_signature() -> None:
    c = lc.new("wipe", T0, dt.timedelta(days=3))
    sent = lc.deliver(c, T0 + dt.timedelta(days=2))
    issued, expires = lc.signature_window(sent, T0 + dt.timedelta(days=2))
    assert expires - issued == dt.timedelta(minutes=10)
