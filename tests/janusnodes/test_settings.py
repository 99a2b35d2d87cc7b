"""Registering Janus nodes in the cloud settings: the single-node settings, ``janus_nodes``
from the environment (JSON) and the TOML file, and errors that name the node and field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from common.errors import ConfigError
from common.settings import DEFAULT_NODE_CAPACITY, CloudSettings, load

SINGLE = {
    "janus_url": "http://10.0.0.11:8088/janus",
    "janus_admin_url": "http://10.0.0.11:7088/admin",
    "janus_admin_secret": "admin-secret-1",
    "janus_room_key": "room-key-1",
    "janus_rec_dir": "/var/lib/janus/rec",
}


def node(name: str, host: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "url": f"http://{host}:8088/janus",
        "admin_url": f"http://{host}:7088/admin",
        "admin_secret": f"admin-secret-{name}",
        "room_key": f"room-key-{name}",
        "rec_dir": "/var/lib/janus/rec",
        **extra,
    }


def test_single_node_settings_are_node_janus_1() -> None:
    nodes = CloudSettings(**SINGLE, janus_public_url="https://bank.example/janus").media_nodes()
    assert [(n.name, n.url, n.public_url, n.capacity, n.draining) for n in nodes] == [
        ("janus-1", SINGLE["janus_url"], "https://bank.example/janus", DEFAULT_NODE_CAPACITY,
         False),
    ]  # fmt: skip
    assert nodes[0].admin_secret == "admin-secret-1" and nodes[0].room_key == "room-key-1"
    assert CloudSettings().media_nodes() == []  # no Janus: no desk


def test_nodes_from_the_environment_follow_janus_1(monkeypatch: pytest.MonkeyPatch) -> None:
    more = [node("janus-2", "10.0.0.12", capacity=80, public_url="https://b.example/j2"),
            node("janus-3", "10.0.0.13", draining=True, read_dir="/mnt/janus-3/rec")]  # fmt: skip
    monkeypatch.setenv("CUNTONG_CLOUD_JANUS_NODES", json.dumps(more))
    monkeypatch.setenv("CUNTONG_CLOUD_JANUS_CAPACITY", "30")
    nodes = load(CloudSettings, **SINGLE).media_nodes()
    assert [(n.name, n.capacity, n.draining) for n in nodes] == [
        ("janus-1", 30, False), ("janus-2", 80, False), ("janus-3", DEFAULT_NODE_CAPACITY, True),
    ]  # fmt: skip
    assert nodes[1].public_url == "https://b.example/j2"
    assert nodes[2].read_dir == Path("/mnt/janus-3/rec")
    # janus_nodes alone is a whole media tier too.
    assert [n.name for n in load(CloudSettings).media_nodes()] == ["janus-2", "janus-3"]


def test_nodes_from_the_toml_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "cuntong.toml"
    config.write_text(
        "[[cloud.janus_nodes]]\n"
        'name = "edge-a"\nurl = "http://10.1.0.1:8088/janus"\n'
        'admin_url = "http://10.1.0.1:7088/admin"\nadmin_secret = "s-a"\nroom_key = "k-a"\n'
        'rec_dir = "/srv/rec"\ncapacity = 120\n'
        "[[cloud.janus_nodes]]\n"
        'name = "edge-b"\nurl = "http://10.1.0.2:8088/janus"\n'
        'admin_url = "http://10.1.0.2:7088/admin"\nadmin_secret = "s-b"\nroom_key = "k-b"\n'
        'rec_dir = "/srv/rec"\ndraining = true\n'
    )
    monkeypatch.setenv("CUNTONG_CONFIG", str(config))
    nodes = load(CloudSettings).media_nodes()
    assert [(n.name, n.capacity, n.draining) for n in nodes] == [
        ("edge-a", 120, False), ("edge-b", DEFAULT_NODE_CAPACITY, True),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("nodes", "expected"),
    [
        ([node("janus-2", "h2", capacity=0)], r"node 'janus-2': capacity: .*greater than 0"),
        ([node("janus-2", "h2", url="10.0.0.2:8088")], r"node 'janus-2': url: must be an http"),
        ([node("janus-2", "h2", room_key="")], r"node 'janus-2': room_key: .*at least 1"),
        ([{"url": "http://h/janus"}], r"node #1: name: Field required.*node #1: admin_url"),
        ([node("bad/name", "h2")], r"node 'bad/name': name: String should match"),
        ([node("janus-2", "h2", capcity=5)], r"node 'janus-2': capcity: Extra inputs"),
        ([node("a", "h2"), node("a", "h3")], r"node 'a': name 'a' is used by another node"),
        ([node("a", "h2"), node("b", "h2")], r"node 'b': url .* is used by another node"),
        ([node("janus-1", "h2")], r"janus_nodes: node 'janus-1': name 'janus-1' is used"),
        ([node("x", "10.0.0.11")], r"node 'x': url 'http://10.0.0.11:8088/janus' is used"),
        ({"name": "x"}, r"JANUS_NODES: .*must be a list of node tables"),
    ],
)
def test_bad_nodes_name_the_node_and_the_field(nodes: object, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load(CloudSettings, **SINGLE, janus_nodes=nodes)


def test_every_bad_node_is_reported_at_once() -> None:
    bad = [node("janus-2", "h2", capacity=-1), node("janus-3", "h3", admin_url="")]
    with pytest.raises(ConfigError) as err:
        load(CloudSettings, janus_nodes=bad)
    assert "node 'janus-2': capacity" in str(err.value)
    assert "node 'janus-3': admin_url" in str(err.value)


def test_janus_1_is_checked_like_the_others() -> None:
    with pytest.raises(ConfigError, match=r"node 'janus-1' .*janus_url: must be an http"):
        load(CloudSettings, **{**SINGLE, "janus_url": "10.0.0.11:8088/janus"})
    with pytest.raises(ConfigError, match="JANUS_CAPACITY"):
        load(CloudSettings, **SINGLE, janus_capacity=0)


def test_secrets_stay_out_of_repr() -> None:
    settings = CloudSettings(**SINGLE, janus_nodes=[node("janus-2", "h2")])
    shown = repr(settings) + repr(settings.media_nodes())
    assert "janus-2" in shown and "capacity=50" in shown
    assert not any(secret in shown for secret in (
        "admin-secret-1", "room-key-1", "admin-secret-janus-2", "room-key-janus-2",
    ))  # fmt: skip


def test_a_recordings_url_must_be_https(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 17: a node's recordings are fetched from its media host's recordings server,
    which takes mutual TLS only; a plain-HTTP URL is refused naming the node and field."""
    fetched = node("janus-2", "10.0.0.12", recordings_url="https://10.0.0.12:8091")
    (got,) = CloudSettings(janus_nodes=[fetched]).media_nodes()
    assert got.recordings_url == "https://10.0.0.12:8091"
    assert CloudSettings(janus_nodes=[node("janus-3", "h")]).media_nodes()[0].recordings_url == ""
    plain = node("janus-2", "10.0.0.12", recordings_url="http://10.0.0.12:8091")
    monkeypatch.setenv("CUNTONG_CLOUD_JANUS_NODES", json.dumps([plain]))
    with pytest.raises(ConfigError, match=r"janus-2.*recordings_url.*https://"):
        load(CloudSettings)


def test_fetched_recordings_need_the_secured_mode() -> None:
    """The archiver's client certificate comes from the CA of the secured mode: a node
    with a recordings_url and no state_dir is refused when the desk starts, naming it."""
    from cloud.media.pool import JanusPool
    from cloud.sessions.wiring import recording_sources

    fetched = node("janus-2", "10.0.0.12", recordings_url="https://10.0.0.12:8091")
    settings = CloudSettings(janus_nodes=[fetched])
    with pytest.raises(ConfigError, match=r"janus-2: recordings_url needs the secured mode"):
        recording_sources(settings, None, JanusPool([]))
    # Without a recordings_url the folder is read locally, secured or not.
    local = recording_sources(
        CloudSettings(janus_nodes=[node("janus-3", "h")]), None, JanusPool([])
    )
    assert callable(local)
