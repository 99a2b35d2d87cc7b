"""The Janus nodes the cloud uses, as one object: rooms placed, opened, closed; tokens.

``JanusPool`` keeps, per node, an admin API client and one long-lived control session with
a VideoRoom handle (the backend's own token, added at start). ``open_room`` places the room
on the least-loaded node (``nodes.NodeRegistry``) and creates it there, recording into that
node's folder; ``grant``/``revoke`` add and remove per-participant tokens on a node and on
the room's access list (a token joins its own room only); ``kick`` removes a participant
left behind in a room.
Nodes that do not answer start unhealthy; ``check_health`` (the owner runs it every few
seconds) marks nodes up or down in the registry and reconnects restarted ones.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field

import httpx

from cloud.media.errors import JanusError, VideoRoomError
from cloud.media.nodes import Node, NodeRegistry
from janus_client.janus import JanusAdmin, JanusClient
from janus_client.videoroom import RoomSpec, VideoRoom

#: VideoRoom's "no such room": closing a room Janus already lost is not an error.
NO_SUCH_ROOM = 426
#: VideoRoom's "no such feed": kicking someone who already left is not an error either.
NO_SUCH_FEED = 428


def room_pin(room_admin_key: str, room: str) -> str:
    """A room's join PIN, also derived from the room admin key: Janus checks it on every
    join (publisher and subscriber), and only the room's own grants carry it."""
    return hmac.new(room_admin_key.encode(), b"pin:" + room.encode(), hashlib.sha256).hexdigest()


def room_secret(room_admin_key: str, room: str) -> str:
    """A room's secret (edit, kick, destroy), derived from the node's room admin key: a
    restarted desk can still close rooms it made, and participants never learn it."""
    return hmac.new(room_admin_key.encode(), room.encode(), hashlib.sha256).hexdigest()


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
    #: The Janus API URL participants are given in their grants (through the reverse
    #: proxy); default ``url``, which the backend itself uses.
    public_url: str = ""
    #: Starts draining (no new rooms), e.g. a node being upgraded.
    draining: bool = False
    #: Where the archiver reads ``rec_dir`` when it is mounted elsewhere; default rec_dir.
    read_dir: str = ""
    #: The media host's recordings server; set, ``read_dir`` is where rooms are staged.
    recordings_url: str = ""


@dataclass
class _Link:
    """The open connection to one node; closing ``stack`` ends session and clients."""

    stack: contextlib.AsyncExitStack
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

    async def __aenter__(self) -> JanusPool:
        """Connect to every node that answers; the others start unhealthy."""
        for access in self._access.values():
            url = access.public_url or access.url
            node = Node(
                access.name, url, access.admin_url, access.capacity, draining=access.draining
            )
            self.registry.add(node)
            node.healthy = await self._reconnect(access)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for name in list(self._links):
            await self._links.pop(name).stack.aclose()

    async def _reconnect(self, access: NodeAccess) -> bool:
        """(Re)open the admin client and the control session; False if the node is down."""
        old = self._links.pop(access.name, None)
        if old is not None:
            await old.stack.aclose()
        stack = contextlib.AsyncExitStack()
        try:
            admin = JanusAdmin(access.admin_url, access.admin_secret, transport=self._transport)
            await stack.enter_async_context(admin)
            service_token = f"backend-{secrets.token_urlsafe(16)}"
            await admin.add_token(service_token)
            client = JanusClient(access.url, service_token, transport=self._transport)
            await stack.enter_async_context(client)
            session = await stack.enter_async_context(client.session())
            control = await VideoRoom.attach(session)
        except JanusError:
            await stack.aclose()
            return False
        self._links[access.name] = _Link(stack, admin, control)
        return True

    async def check_health(self) -> dict[str, bool]:
        """Ask every node for ``info``; reconnect nodes that came back (e.g. a restarted
        Janus, which forgot our session and token). Updates the registry; run every few s."""
        health = {}
        for name, access in self._access.items():
            link = self._links.get(name)
            ok = False
            if link is not None and not link.control.session.failed:
                try:
                    await link.control.session.client.info()
                    ok = True
                except JanusError:
                    ok = False
            if not ok:
                ok = await self._reconnect(access)
            self.registry.set_health(name, ok)
            health[name] = ok
        return health

    def _link(self, node: Node) -> _Link:
        link = self._links.get(node.name)
        if link is None:
            raise JanusError(f"Janus node {node.name} is not connected")
        return link

    async def open_room(self, room: str) -> Node:
        """Place and create a room; on failure nothing stays counted."""
        node = self.registry.place(room)
        access = self._access[node.name]
        # Scoped to its call: a subscriber needs the room's PIN (only its grants carry it),
        # a publisher also a token on the room's list (``grant`` adds them).
        spec = RoomSpec(room, record=access.record, rec_dir=access.rec_dir,
                        secret=self._secret(node, room), allowed=(),
                        pin=self.room_pin(node, room))  # fmt: skip
        try:
            await self._link(node).control.create_room(spec, access.room_admin_key)
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
            await self._link(node).control.destroy_room(room, self._secret(node, room))
        except VideoRoomError as err:
            if err.code != NO_SUCH_ROOM:
                raise
        finally:
            self.registry.release(room)
        return node

    async def close_left_room(self, node_name: str, room: str) -> Node | None:
        """Destroy a room a previous process opened on ``node_name`` (this pool never
        placed it, so the registry does not know it); gone already is fine. Returns the
        node, or None if no such node is configured any more."""
        node = self.registry.nodes.get(node_name)
        if node is None:
            return None
        try:
            await self._link(node).control.destroy_room(room, self._secret(node, room))
        except VideoRoomError as err:
            if err.code != NO_SUCH_ROOM:
                raise
        return node

    async def adopt_room(self, node_name: str, room: str) -> Node | None:
        """Take over a room a previous process opened on ``node_name`` (a desk taking over
        a live call): counted and known here from now on, as if this pool had placed it.
        None if that node is not configured or not connected, or does not have the room."""
        node = self.registry.nodes.get(node_name)
        link = self._links.get(node_name)
        if node is None or link is None:
            return None
        try:
            if not await link.control.exists(room):
                return None
        except JanusError:
            return None
        if room not in self.registry.placement:
            node.rooms += 1
            self.registry.placement[room] = node.name
        return node

    async def find_room(self, room: str) -> Node | None:
        """The connected node that has ``room`` (asking each), for a room a previous
        process opened without recording where; None if no node answers that it has it."""
        for node in self.registry.nodes.values():
            link = self._links.get(node.name)
            if link is None:
                continue
            with contextlib.suppress(JanusError):
                if await link.control.exists(room):
                    return node
        return None

    async def kick(self, node: Node, room: str, feed: str) -> None:
        """Remove a participant still in the room (e.g. a crashed browser's publisher,
        which Janus keeps until ICE or its session times out); gone already is fine."""
        try:
            await self._link(node).control.kick(room, feed, self._secret(node, room))
        except VideoRoomError as err:
            if err.code != NO_SUCH_FEED:
                raise

    def room_pin(self, node: Node, room: str) -> str:
        """The PIN a participant's grant carries to join ``room``."""
        return room_pin(self._access[node.name].room_admin_key, room)

    def _secret(self, node: Node, room: str) -> str:
        return room_secret(self._access[node.name].room_admin_key, room)

    async def grant(self, node: Node, room: str, token: str) -> None:
        """Let ``token`` join ``room`` and no other: the Janus API on this node (VideoRoom
        only) and the room's access list. A join into another room is refused by Janus
        (``UNAUTHORIZED``, "not in the allowed list")."""
        link = self._link(node)
        await link.admin.add_token(token)
        await link.control.allow(room, [token], self._secret(node, room))

    async def revoke(self, node: Node, room: str, token: str) -> None:
        """Take ``token`` back: off the node first (it is dead at once), then off the room's
        list (a room already destroyed has no list left)."""
        link = self._link(node)
        await link.admin.remove_token(token)
        try:
            await link.control.allow(room, [token], self._secret(node, room), add=False)
        except VideoRoomError as err:
            if err.code != NO_SUCH_ROOM:
                raise

    def api_url(self, node_name: str) -> str | None:
        """Where the cloud itself reaches a node's Janus API (what the signalling gate
        forwards to); None for a node not configured."""
        access = self._access.get(node_name)
        return None if access is None else access.url

    def rec_dir(self, node: Node) -> str:
        """Where the archiver finds this node's recordings."""
        access = self._access[node.name]
        return access.read_dir or access.rec_dir

    def recordings_url(self, node: Node) -> str:
        """The node's recordings server, or "" when its folder is read locally."""
        return self._access[node.name].recordings_url
