"""Which Janus node gets a new room: the least loaded healthy one (pure).

Load is the share of a node's capacity in use, counted in rooms because every teller
session costs about the same (two publishers, two subscribers, recording). Capacity is
per node, so a bigger machine takes proportionally more. A node that is unhealthy (missed
health checks) or draining (being taken out for an upgrade) gets no new rooms; its rooms
finish where they are. Ties go to the node with fewer rooms, then to the name, so the
choice is deterministic.

``NodeRegistry`` keeps the counts: ``place`` picks and records, ``release`` forgets when
the session ends. It is plain data with no I/O; the media service that owns it feeds it
health results and calls it when a session connects.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from cloud.media.errors import NoMediaCapacity


@dataclass(slots=True)
class Node:
    name: str
    url: str
    admin_url: str
    capacity: int  # rooms this node can hold
    rooms: int = 0
    healthy: bool = True
    draining: bool = False

    @property
    def load(self) -> float:
        return self.rooms / self.capacity if self.capacity > 0 else float("inf")

    @property
    def accepting(self) -> bool:
        return self.healthy and not self.draining and self.rooms < self.capacity

    def status(self) -> dict[str, object]:
        """What operators see (/healthz): state and load, no addresses or secrets."""
        return {
            "name": self.name,
            "healthy": self.healthy,
            "draining": self.draining,
            "rooms": self.rooms,
            "capacity": self.capacity,
        }


def least_loaded(nodes: Iterable[Node]) -> Node:
    """The node a new room should go to; NoMediaCapacity when none can take it."""
    candidates = [n for n in nodes if n.accepting]
    if not candidates:
        raise NoMediaCapacity("no healthy Janus node with free capacity")
    return min(candidates, key=lambda n: (n.load, n.rooms, n.name))


@dataclass
class NodeRegistry:
    nodes: dict[str, Node] = field(default_factory=dict)
    #: room id -> node name, for release and for telling clients where their room is.
    placement: dict[str, str] = field(default_factory=dict)

    def add(self, node: Node) -> None:
        if node.name in self.nodes:
            raise ValueError(f"node {node.name} already registered")
        self.nodes[node.name] = node

    def place(self, room: str) -> Node:
        """Put a new room on the least-loaded node and count it there."""
        if room in self.placement:
            return self.nodes[self.placement[room]]
        node = least_loaded(self.nodes.values())
        node.rooms += 1
        self.placement[room] = node.name
        return node

    def release(self, room: str) -> None:
        name = self.placement.pop(room, None)
        if name is not None and name in self.nodes:
            self.nodes[name].rooms = max(0, self.nodes[name].rooms - 1)

    def node_of(self, room: str) -> Node | None:
        name = self.placement.get(room)
        return None if name is None else self.nodes.get(name)

    def set_health(self, name: str, healthy: bool) -> None:
        self.nodes[name].healthy = healthy

    def drain(self, name: str, draining: bool = True) -> None:
        self.nodes[name].draining = draining
