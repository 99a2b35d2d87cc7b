"""``cuntong up``'s media: N local Janus nodes on their own ports, all registered with the
cloud through the settings the stack hands the API."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cloud.media.pool import JanusPool
from cloud.sessions.wiring import node_access
from common.errors import ConfigError
from common.settings import CloudSettings, load
from cuntong.stack import JANUS_NODES_ENV, Stack


async def test_up_starts_n_janus_nodes_and_registers_them_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(JANUS_NODES_ENV, "2")
    stack = Stack(state_dir=tmp_path)
    try:
        await asyncio.to_thread(stack.start_media, 8000)
        env = stack.media_env()
        for key, value in env.items():
            monkeypatch.setenv(key, str(value))
        nodes = load(CloudSettings).media_nodes()
        assert [n.name for n in nodes] == ["janus-1", "janus-2"]
        assert len({n.url for n in nodes}) == len({n.admin_url for n in nodes}) == 2
        assert nodes[1].rec_dir == tmp_path / "janus-2" / "recordings"
        # The secrets the API gets are the nodes' own: the pool connects to both.
        async with JanusPool([node_access(n) for n in nodes]) as pool:
            assert all(node.healthy for node in pool.registry.nodes.values())
    finally:
        await asyncio.to_thread(stack.stop_media)
    assert stack.janus is None and stack.more_janus == []


@pytest.mark.parametrize("raw", ["0", "-1", "two"])
def test_a_bad_node_count_is_refused(raw: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(JANUS_NODES_ENV, raw)
    with pytest.raises(ConfigError, match=JANUS_NODES_ENV):
        Stack(state_dir=Path("unused")).node_count()
    assert Stack(state_dir=Path("unused"), janus_nodes=3).node_count() == 3


def test_one_node_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(JANUS_NODES_ENV, raising=False)
    assert Stack(state_dir=Path("unused")).node_count() == 1
