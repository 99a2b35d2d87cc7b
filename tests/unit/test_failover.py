"""The pure core of broker failover: the rotation, presence across brokers, the settings."""

from __future__ import annotations

import pytest

from common.errors import ConfigError
from common.failover import Presence, Rotation
from common.settings import AgentSettings, BrokerEndpoint, CloudSettings, load


def test_rotation_moves_on_each_failure_and_reports_a_failed_round() -> None:
    r = Rotation(("a", "b", "c"))
    assert r.current == "a"
    assert r.failed() == "b" and not r.round_failed
    assert r.failed() == "c" and not r.round_failed
    assert r.failed() == "a" and r.round_failed  # every broker tried once
    r.connected()
    assert r.current == "a" and not r.round_failed


def test_rotation_keeps_a_working_broker_when_the_list_changes() -> None:
    r = Rotation(("a", "b"))
    r.failed()
    assert r.replace(["c", "b"]) and r.current == "b"  # still listed: stays
    assert not r.replace(["c", "b"])  # same list: no change
    assert r.replace(["x", "y"]) and r.current == "x"  # gone: the new first
    with pytest.raises(ValueError, match="at least one"):
        r.replace([])


def test_presence_ignores_older_news_from_another_broker() -> None:
    p: Presence[str] = Presence()
    assert p.update("T1", "A", True, 1000)  # came online
    assert p.where("T1") == "A"
    assert p.broker_lost("A") == ["T1"] and p.where("T1") is None
    assert not p.update("T1", "B", True, 900)  # B's stale retained "online"
    assert p.where("T1") is None
    assert p.update("T1", "B", True, 2000)  # the failover: online on B
    assert not p.update("T1", "A", False, 1500)  # A back, with its stale "offline"
    assert p.where("T1") == "B"
    # Its own broker's news always applies: the will carries the (older) connect time.
    assert not p.update("T1", "B", False, 1999)
    assert p.online() == set()


def test_broker_lists_parse_strings_and_tables_and_name_bad_entries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = load(
        CloudSettings,
        brokers=["10.0.0.1:8883", {"host": "10.0.0.2", "port": 8883, "public_host": "b.example"}],
    )
    assert s.broker_endpoints() == [
        BrokerEndpoint(host="10.0.0.1", port=8883),
        BrokerEndpoint(host="10.0.0.2", port=8883, public_host="b.example"),
    ]
    single = load(CloudSettings, broker_host="h", broker_port=1884, public_broker_host="p")
    assert single.broker_endpoints() == [BrokerEndpoint(host="h", port=1884, public_host="p")]
    agent = load(AgentSettings, terminal_id="T1", brokers="a:1,b:2")
    assert [e.label for e in agent.broker_endpoints()] == ["a:1", "b:2"]
    monkeypatch.setenv("CUNTONG_CLOUD_BROKERS", "a:1, b:2")
    assert [e.label for e in load(CloudSettings).broker_endpoints()] == ["a:1", "b:2"]
    monkeypatch.setenv("CUNTONG_CLOUD_BROKERS", '["a:1", {"host": "b", "port": 2}]')
    assert [e.label for e in load(CloudSettings).broker_endpoints()] == ["a:1", "b:2"]
    monkeypatch.delenv("CUNTONG_CLOUD_BROKERS")
    with pytest.raises(ConfigError, match=r"broker #2: 'nope' is not \"host:port\""):
        load(CloudSettings, brokers=["a:1", "nope"])
    with pytest.raises(ConfigError, match="broker #1: port"):
        load(CloudSettings, brokers=["a:70000"])
    with pytest.raises(ConfigError, match="a:1 is listed twice"):
        load(CloudSettings, brokers=["a:1", "a:1"])
