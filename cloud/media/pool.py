"""The Janus nodes the cloud uses, as one object: rooms placed, opened, closed; tokens.

``JanusPool`` keeps, per node, an admin API client and one long-lived control session with
a VideoRoom handle (the backend's own token, added at start). ``open_room`` places the room
on the least-loaded node (``nodes.NodeRegistry``) and creates it there, recording into that
node's folder; ``grant``/``revoke`` add and remove per-participant tokens on a node.
Health checking and draining are the owner's job, through ``registry``.
"""

from __future__ import annotations

import contextlib
import secrets
from dataclasses import dataclass, field

import httpx

from cloud.media.errors import VideoRoomError
from cloud.media.janus import JanusAdmin, JanusClient
from cloud.media.nodes import Node, NodeRegistry
from cloud.media.videoroom import RoomSpec, VideoRoom

#: VideoRoom's "no such room": closing a room Janus already lost is not an error.
NO_SUCH_ROOM = 426


@dataclass(frozen=True, slots=True)
class NodeAccess:
    """How the cloud reaches one Janus node (secrets come from its settings, not code)."""

    name: str
    url: str
    admin_url: str
    admin_secret: str = field(repr=False)
    room_admin_key: str = field(repr=False)
    rec_dir: str
    capacity: int = 50
    record: bool = True


@dataclass
class _Link:
    access: NodeAccess
    admin: JanusAdmin
    control: VideoRoom


class JanusPool:
    def __init__(
        self, nodes: list[NodeAccess], *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.registry = NodeRegistry()
        self._access = {n.name: n for n in nodes}
        self._transport = transport
        self._links: dict[str, _Link] = {}
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> JanusPool:
        try:
            for access in self._access.values():
                await self._connect(access)
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def _connect(self, access: NodeAccess) -> None:
        admin = JanusAdmin(access.admin_url, access.admin_secret, transport=self._transport)
        await self._stack.enter_async_context(admin)
        service_token = f"backend-{secrets.token_urlsafe(16)}"
        await admin.add_token(service_token)
        client = JanusClient(access.url, service_token, transport=self._transport)
        await self._stack.enter_async_context(client)
        session = await self._stack.enter_async_context(client.session())
        control = await VideoRoom.attach(session)
        self._links[access.name] = _Link(access, admin, control)
        self.registry.add(Node(access.name, access.url, access.admin_url, access.capacity))

    async def open_room(self, room: str) -> Node:
        """Place and create a room; on failure nothing stays counted."""
        node = self.registry.place(room)
        link = self._links[node.name]
        spec = RoomSpec(room, record=link.access.record, rec_dir=link.access.rec_dir)
        try:
            await link.control.create_room(spec, link.access.room_admin_key)
        except BaseException:
            self.registry.release(room)
            raise
        return node

    async def close_room(self, room: str) -> Node | None:
        """Destroy the room (Janus closes its recordings) and forget its placement."""
        node = self.registry.node_of(room)
        if node is None:
            return None
        try:
            await self._links[node.name].control.destroy_room(room)
        except VideoRoomError as err:
            if err.code != NO_SUCH_ROOM:
                raise
        finally:
            self.registry.release(room)
        return node

    async def grant(self, node: Node, token: str) -> None:
        """Let ``token`` use the Janus API (VideoRoom only) on this node."""
        await self._links[node.name].admin.add_token(token)

    async def revoke(self, node: Node, token: str) -> None:
        await self._links[node.name].admin.remove_token(token)

    def rec_dir(self, node: Node) -> str:
        return self._access[node.name].rec_dir
