"""A configured node reaches the pool as it was written: draining, capacity, where the
archiver reads its recordings."""

from __future__ import annotations

from pathlib import Path

from cloud.media.pool import JanusPool
from cloud.sessions.wiring import node_access
from common import procs
from common.settings import JanusNode


def configured(name: str, port: int, **extra: object) -> JanusNode:
    return JanusNode.model_validate(
        {
            "name": name,
            "url": f"http://127.0.0.1:{port}/janus",
            "public_url": f"https://bank.example/{name}/janus",
            "admin_url": f"http://127.0.0.1:{port}/admin",
            "admin_secret": "secret",
            "room_key": "key",
            "rec_dir": "/var/lib/janus/rec",
            **extra,
        }
    )


async def test_settings_nodes_become_pool_nodes() -> None:
    port = procs.free_port()  # nobody listens: the nodes start unhealthy, no waiting
    nodes = [
        configured("x", port, capacity=7, draining=True, read_dir=Path("/mnt/x/rec")),
        configured("y", procs.free_port()),
    ]
    async with JanusPool([node_access(n) for n in nodes]) as pool:
        x, y = pool.registry.nodes["x"], pool.registry.nodes["y"]
        assert (x.capacity, x.draining, x.healthy) == (7, True, False)
        assert (y.capacity, y.draining, y.healthy) == (50, False, False)
        assert x.url == "https://bank.example/x/janus"  # grants carry the public URL
        assert pool.rec_dir(x) == "/mnt/x/rec"  # the cloud's mount of x's folder
        assert pool.rec_dir(y) == "/var/lib/janus/rec"
