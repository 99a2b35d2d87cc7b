"""Placement of new rooms on the least-loaded Janus node."""

from __future__ import annotations

import pytest

from cloud.media.errors import NoMediaCapacity
from cloud.media.nodes import Node, NodeRegistry, least_loaded


def node(name: str, capacity: int, rooms: int = 0, **kw: bool) -> Node:
    return Node(name, f"http://{name}/janus", f"http://{name}/admin", capacity, rooms, **kw)


@pytest.mark.parametrize(
    ("nodes", "expected"),
    [
        pytest.param([node("a", 10, 5), node("b", 10, 2)], "b", id="fewer-rooms"),
        pytest.param([node("a", 10, 5), node("b", 40, 10)], "b", id="relative-to-capacity"),
        pytest.param([node("a", 10, 2), node("b", 20, 4)], "a", id="tie-fewer-rooms"),
        pytest.param([node("b", 10, 0), node("a", 10, 0)], "a", id="tie-by-name"),
        pytest.param([node("a", 10, 0, healthy=False), node("b", 10, 9)], "b", id="skip-sick"),
        pytest.param([node("a", 10, 0, draining=True), node("b", 10, 9)], "b", id="skip-drain"),
        pytest.param([node("a", 10, 10), node("b", 10, 9)], "b", id="skip-full"),
        pytest.param([node("a", 0), node("b", 1)], "b", id="zero-capacity"),
    ],
)
def test_least_loaded(nodes: list[Node], expected: str) -> None:
    assert least_loaded(nodes).name == expected


@pytest.mark.parametrize(
    "nodes",
    [[], [node("a", 1, 1)], [node("a", 5, healthy=False), node("b", 5, draining=True)]],
)
def test_no_capacity(nodes: list[Node]) -> None:
    with pytest.raises(NoMediaCapacity):
        least_loaded(nodes)


def test_registry_spreads_rooms_and_releases() -> None:
    reg = NodeRegistry()
    reg.add(node("small", 2))
    reg.add(node("big", 4))
    placed = [reg.place(f"room-{n}").name for n in range(6)]
    assert placed.count("small") == 2 and placed.count("big") == 4
    with pytest.raises(NoMediaCapacity):
        reg.place("room-6")
    assert reg.place("room-0").name == placed[0]  # idempotent for a known room
    reg.release("room-0")
    reg.release("room-0")  # twice is harmless
    assert reg.place("room-7").name == placed[0]
    assert reg.node_of("room-7") is reg.nodes[placed[0]]
    with pytest.raises(ValueError):
        reg.add(node("big", 1))


def test_health_and_drain_steer_new_rooms_only() -> None:
    reg = NodeRegistry()
    reg.add(node("a", 10))
    reg.add(node("b", 10))
    first = reg.place("r1").name
    reg.drain(first)
    assert reg.place("r2").name != first
    assert reg.node_of("r1") is not None and reg.node_of("r1").name == first  # type: ignore[union-attr]
    other = reg.node_of("r2").name  # type: ignore[union-attr]
    reg.set_health(other, False)
    with pytest.raises(NoMediaCapacity):
        reg.place("r3")
    reg.drain(first, False)
    assert reg.place("r3").name == first
