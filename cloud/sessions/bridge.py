"""The desk's MQTT link to terminals: session messages in, desk messages out.

Subscribes to every terminal's ``session`` topic (requests, cancels, hang-ups, ring-backs,
liveness verdicts, ratings; parsed by the call codec ``common.wire.call`` the terminal
shares) and ``status`` topic (presence, for the grace period of a terminal that drops
mid-call), and is the ``Outbox``'s terminal sink: desk messages go to
``cuntong/v1/t/<id>/desk`` at QoS 1, encoded by the same codec (a message it refuses is a
desk bug: logged, not sent). The first ``queued`` of a request carries the terminal's
``request_id`` so it can tell its own request's answer.

Broker failover: the link subscribes on every broker of the ordered list
(``CloudSettings.broker_endpoints``), follows which one each terminal is on from its
retained status (``common.failover.Presence``: stale news from a broker it left is
ignored) and answers it through that one, so a terminal that failed over to the second
broker can still ask for a teller and hear the desk.

A malformed or refused message is counted (``stats``, shown on ``/healthz``) and logged,
never raised: one broken terminal must not take the link down for ten thousand. In secured
mode the link uses the service certificate ``svc.<instance>-desk``.

The link keeps a persistent MQTT 5 session (``clean_start=False``, expiry
``SESSION_EXPIRY_S``: never) under a client id that is stable per desk instance (the service
certificate's, else ``cuntong-desk-<host>``): what terminals send while the desk restarts
(a customer pressing 视频柜员, a hang-up) waits in the broker and is handled when it is
back. Each message is acknowledged only once handled (manual acks), so one a desk had
received but not yet handled when it was killed or lost the lease is redelivered to the next
desk (a request handled and stored but not yet acknowledged at a kill would be taken again as
a new request from that terminal, ending the adopted one: the window is the instant between
the two). The session never expires at the broker; the leader ends other instances' desk
sessions (``cloud.security.Security.sweep_sessions``). A hang-up or cancel of a session a
restarted desk ended is accepted and answered with how it ended (``stats.late``), not refused.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import aiomqtt
import orjson
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cloud.lease import LeaseLost
from cloud.security import Security, service_client, service_client_id
from cloud.sessions import store
from cloud.sessions.desk import Desk
from cloud.sessions.errors import SessionError
from cloud.sessions.grants import Message
from cloud.sessions.state import State
from cloud.sessions.watch import Watch
from cloud.workflow.errors import WorkflowError
from common import envelope, topics
from common.errors import WireError
from common.failover import Presence
from common.mqtt_link import SESSION_NEVER_EXPIRES, keep_connected
from common.settings import BrokerEndpoint, CloudSettings
from common.wire import call as wire

#: A customer this old or older is served ahead (``Policy.elderly_head_start``).
ELDERLY_AGE = 60

StepSink = Callable[[str, str, wire.StepResult], Awaitable[dict[str, Any]]]
#: Checks an ID read made before queueing (terminal, request): its masked data, or raises
#: ``WorkflowError`` (``cloud.workflow.device.check_before_queue``).
IdReadCheck = Callable[[str, wire.Request, set[str]], dict[str, Any]]


class IdReads(Protocol):
    """Where verified before-queue reads wait for the teller (``cloud.sessions.wiring``
    keeps them in the database: a restarted desk or a standby taking over still has them,
    and each is taken once across replicas)."""

    async def hold(
        self,
        terminal_id: str,
        session_id: str,
        request_id: str,
        result: wire.StepResult,
        masked: dict[str, Any],
    ) -> bool:
        """Keep the read for the session; False if its request id was already held."""
        ...

    async def masked(self, session_id: str) -> dict[str, Any] | None:
        """The masked fields of the read held for the session, None if none (or expired)."""
        ...

    async def take(self, terminal_id: str, session_id: str) -> dict[str, Any] | None:
        """Claim the session's read and record it as its ``id_card_read`` step: what the
        teller is told (as ``StepSink``), None if none is held (taken, expired, another
        terminal's). WorkflowError if the workflow refuses it."""
        ...


log = logging.getLogger("cuntong.desk.link")

#: This link's service certificate is ``svc.<service_instance>-desk`` (see
#: ``cloud.security.broker_services``).
INSTANCE_SUFFIX = "-desk"
#: Request ids remembered per link, so a QoS 1 redelivery does not queue a customer twice.
REMEMBERED_REQUESTS = 10_000
#: The broker keeps the desk's session (and what terminals send) while it is away: never
#: expiring (``SESSION_NEVER_EXPIRES``; a finite expiry meets Mosquitto 2.0.11's reload
#: crash). The leader ends the desk sessions of other instances when its term starts
#: (``cloud.security.Security.sweep_sessions``), so a standby's old session does not hoard
#: requests.
SESSION_EXPIRY_S = SESSION_NEVER_EXPIRES


@dataclass
class LinkStats:
    received: int = 0
    malformed: int = 0
    #: Well-formed but refused: unknown business, someone else's session, no desk.
    refused: int = 0
    requests: int = 0
    published: int = 0
    publish_failed: int = 0
    #: Hang-ups and cancels of the terminal's own session that had already ended.
    late: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class DeskLink:
    def __init__(self, settings: CloudSettings, security: Security | None = None) -> None:
        self.s = settings
        self.security = security
        #: Set by the owner once the desk exists (the desk's notify is this link's sink).
        self.desk: Desk | None = None
        self.watch: Watch | None = None
        #: Set by the owner: checks and records a device step's result for a session and
        #: returns what the teller is told (``cloud.sessions.wiring``).
        self.on_step: StepSink | None = None
        #: Set by the owner: checks and takes ID reads made before queueing (先刷身份证).
        self.check_id_read: IdReadCheck | None = None
        #: Set by the owner: verified reads held until the teller reaches ``id_card_read``
        #: (in the database, so a restarted or a standby desk still has them).
        self.id_reads: IdReads | None = None
        self.stats = LinkStats()
        #: Set while the link is up on at least one broker.
        self.ready = asyncio.Event()
        #: Broker failover: one link per broker of the ordered list; each terminal is
        #: answered through the broker its latest retained status came from.
        self.endpoints = settings.broker_endpoints()
        self.presence: Presence[int] = Presence()
        self._clients: dict[int, aiomqtt.Client] = {}
        self._first_queued: dict[str, str] = {}  # session id -> the terminal's request id
        self._seen: OrderedDict[tuple[str, str], str] = OrderedDict()
        self.client_id = service_client_id(
            settings, security, INSTANCE_SUFFIX, f"cuntong-desk-{socket.gethostname()}"
        )

    # -- the link ------------------------------------------------------------------------

    async def run(self) -> None:
        links = [
            asyncio.create_task(self._link(i, e), name=f"desk-link-{e.label}")
            for i, e in enumerate(self.endpoints)
        ]
        try:
            await asyncio.gather(*links)
        finally:
            for task in links:
                task.cancel()
            await asyncio.gather(*links, return_exceptions=True)

    async def _link(self, index: int, endpoint: BrokerEndpoint) -> None:
        def down() -> None:
            self._clients.pop(index, None)
            if not self._clients:
                self.ready.clear()
            # Its terminals are away until heard on another broker (the grace period runs).
            for terminal_id in self.presence.broker_lost(index):
                if self.watch is not None:
                    self.watch.terminal_offline(terminal_id)

        await keep_connected(
            lambda: self._make_client(endpoint),
            lambda client: self._serve(index, client),
            name=f"desk ({endpoint.label})",
            base_s=0.5,
            cap_s=5.0,
            on_down=down,
        )

    def _make_client(self, endpoint: BrokerEndpoint) -> aiomqtt.Client:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        client = service_client(
            self.s,
            self.security,
            INSTANCE_SUFFIX,
            self.client_id,
            endpoint,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False,
            properties=props,
        )
        # A message is acknowledged once handled (``_serve``), not on arrival: one that a
        # desk received but had not yet handled when it died or lost the lease stays in the
        # broker's session and reaches the next desk. Set before connecting: the session's
        # queue arrives right after CONNACK.
        client._client.manual_ack_set(True)  # aiomqtt exposes no manual ack
        return client

    async def _serve(self, index: int, client: aiomqtt.Client) -> None:
        await client.subscribe(
            [
                (topics.subscription(topics.Channel.SESSION), 1),
                (topics.subscription(topics.Channel.STATUS), 1),
            ]
        )
        self._clients[index] = client
        self.ready.set()
        try:
            async for message in client.messages:
                await self._take(index, message)
                # Handled (or refused): acknowledged now. A desk cancelled above (its lease
                # lost) or killed leaves the message unacknowledged for the next one.
                client._client.ack(message.mid, message.qos)  # aiomqtt exposes no manual ack
        finally:
            self._clients.pop(index, None)

    async def _take(self, index: int, message: aiomqtt.Message) -> None:
        payload = message.payload if isinstance(message.payload, bytes) else b""
        try:
            parsed = topics.parse(str(message.topic))
        except ValueError:
            return
        try:
            if parsed.channel is topics.Channel.STATUS:
                self._status(index, parsed.terminal_id, payload)
            else:
                await self.handle(parsed.terminal_id, payload)
        except LeaseLost:  # a fenced write refused: this desk's term is over; unacknowledged,
            raise  # the message reaches the next desk instead of being dropped here
        except Exception:  # a bug in one message's handling must not end the link
            log.exception("terminal %s: handling a message failed", parsed.terminal_id)

    def _client_for(self, terminal_id: str) -> aiomqtt.Client | None:
        """The link to the broker the terminal is on; unknown there, any link that is up
        (a terminal that has not been heard of yet is likeliest on the first)."""
        broker = self.presence.where(terminal_id)
        if broker is not None and broker in self._clients:
            return self._clients[broker]
        return next((self._clients[i] for i in sorted(self._clients)), None)

    async def send(self, terminal_id: str, message: Message) -> None:
        """The outbox's terminal sink: publish one desk message (QoS 1)."""
        session = message.get("session")
        if message.get("type") == "queued" and session in self._first_queued:
            message = {**message, "request_id": self._first_queued.pop(session)}
        client = self._client_for(terminal_id)
        if client is None:
            self.stats.publish_failed += 1
            log.warning("desk link down: %s for %s not sent", message.get("type"), terminal_id)
            return
        try:
            payload = wire.desk_from_dict(message).to_bytes()
        except wire.CallError as err:  # a desk bug: say so rather than confuse the terminal
            self.stats.publish_failed += 1
            log.error("%s for %s not sent: %s", message.get("type"), terminal_id, err)
            return
        try:
            await client.publish(
                topics.topic(terminal_id, topics.Channel.DESK),
                payload,
                qos=1,
                timeout=10,
            )
            self.stats.published += 1
        except aiomqtt.MqttError as err:
            self.stats.publish_failed += 1
            log.warning("publishing to %s failed: %s", terminal_id, err)

    # -- what terminals say --------------------------------------------------------------

    def _status(self, index: int, terminal_id: str, payload: bytes) -> None:
        try:
            status = envelope.parse_status(payload, terminal_id)
        except WireError as err:
            self.stats.malformed += 1
            log.warning("terminal %s: bad status: %s", terminal_id, err)
            return
        # Stale retained news from a broker the terminal has left does not count.
        self.presence.update(terminal_id, index, status.online, status.ts_ms)
        online = self.presence.where(terminal_id) is not None
        if self.watch is not None:
            if online:
                self.watch.terminal_online(terminal_id)
            else:
                self.watch.terminal_offline(terminal_id)

    async def handle(self, terminal_id: str, payload: bytes) -> None:
        """One message from a terminal's ``session`` topic."""
        self.stats.received += 1
        try:
            message = wire.parse_session(payload)
        except wire.CallError as err:
            self.stats.malformed += 1
            log.warning("terminal %s: malformed session message: %s", terminal_id, err)
            request_id = _request_id_of(payload)
            if request_id is not None:
                await self._refuse(terminal_id, request_id, f"bad message: {err}")
            return
        desk = self.desk
        if desk is None:
            self._refused(terminal_id, "the desk is not running")
            if isinstance(message, wire.Request):
                await self._refuse(terminal_id, message.request_id, "the desk is not running")
            return
        match message:
            case wire.Request():
                await self._request(desk, terminal_id, message)
            case wire.Cancel() | wire.HangUp():
                if await self._late(desk, terminal_id, message.session):
                    return
                if self._owns(desk, terminal_id, message.session):
                    try:
                        await desk.customer_ended(message.session, message.cause)
                    except SessionError as err:
                        self._refused(terminal_id, str(err))
            case wire.Liveness():
                if await store.set_liveness(message.session, terminal_id, message.verdict):
                    teller = desk.watcher_of(message.session)
                    if teller is not None:
                        await desk.notify(
                            f"teller:{teller}",
                            {
                                "type": "liveness",
                                "session": message.session,
                                "verdict": message.verdict,
                            },
                        )
                else:
                    self._refused(terminal_id, f"liveness for unknown {message.session}")
            case wire.RingBack():
                if self._owns(desk, terminal_id, message.session):
                    try:
                        await desk.ring_back(message.session, terminal_id)
                    except SessionError as err:
                        self._refused(terminal_id, f"ring-back refused: {err}")
                    else:
                        log.info("terminal %s: session %s is a ring-back", terminal_id,
                                 message.session)  # fmt: skip
            case wire.Rating():
                if not await store.set_rating(message.session, terminal_id, message.score):
                    self._refused(terminal_id, f"rating for unknown {message.session}")
            case wire.StepResult():
                await self._step_result(desk, terminal_id, message)

    async def _step_result(self, desk: Desk, terminal_id: str, result: wire.StepResult) -> None:
        """A device step's signed result: checked against the terminal's live session (a
        result naming another session is refused by the check), then told to the teller."""
        live = desk.live_sessions_of_terminal(terminal_id)
        if self.on_step is None or not live:
            self._refused(
                terminal_id, f"step result with no live session to take it ({result.step})"
            )
            return
        session_id = result.session if result.session in live else live[0]
        try:
            answer = await self.on_step(terminal_id, session_id, result)
        except WorkflowError as err:
            self._refused(terminal_id, f"step result refused: {err}")
            answer = {"outcome": "refused", "reason": str(err), "masked": {}}
        teller = desk.watcher_of(session_id)
        if teller is not None:
            message = {"type": "step_result", "session": session_id, "step": result.step, **answer}
            await desk.notify(f"teller:{teller}", message)
        text = answer.get("masked", {}).get("customer_text")
        if answer.get("outcome") != "refused" and isinstance(text, str) and text:
            # the cloud's words for the customer (a wrong PIN's tries left, a locked card)
            outcome = wire.StepOutcome(session_id, result.step, bool(answer.get("passed")), text)
            await self.send(terminal_id, outcome.to_dict())

    async def _request(self, desk: Desk, terminal_id: str, message: wire.Request) -> None:
        key = (terminal_id, message.request_id)
        if key in self._seen:
            return  # a redelivery of a request already queued
        policy = desk.board.policy
        if message.business not in policy.businesses:
            await self._refuse(terminal_id, message.request_id, "unknown business")
            return
        if message.language not in policy.languages:
            await self._refuse(terminal_id, message.request_id, "unknown language")
            return
        for stale in desk.live_sessions_of_terminal(terminal_id):
            # One customer at a time: a terminal asking again has given up on the old one
            # (its agent restarted, or the customer walked away and another pressed).
            try:
                await desk.customer_ended(stale, "terminal sent a new request")
            except SessionError as err:
                log.info("session %s: %s", stale, err)
        session_id = uuid.uuid4().hex
        self._first_queued[session_id] = message.request_id
        read = await self._id_read(desk, terminal_id, message)
        # Age from the ID card when the customer started with it; otherwise their own word.
        card = message.customer
        if read is not None and read.get("age") is not None:
            elderly = bool(read.get("elderly"))  # the signed card's age, not a button
        else:
            elderly = message.elderly or (
                card is not None and card.age(desk.clock().date()) >= ELDERLY_AGE
            )
        try:
            await desk.request(session_id, terminal_id, message.business, message.language, elderly)
        except SessionError as err:
            self._first_queued.pop(session_id, None)
            await self._refuse(terminal_id, message.request_id, str(err))
            return
        self._first_queued.pop(session_id, None)  # sent with the first queued, or moot
        self.stats.requests += 1
        self._seen[key] = session_id
        while len(self._seen) > REMEMBERED_REQUESTS:
            self._seen.popitem(last=False)
        customer = None if message.customer is None else asdict(message.customer)
        if read is not None and message.id_read is not None:
            full = message.id_read.full or {}
            customer = {"name": str(full.get("name")), "id_number": str(full.get("id_number"))}
            if self.id_reads is not None and not await self.id_reads.hold(
                terminal_id, session_id, message.request_id, message.id_read, read
            ):
                self._refused(terminal_id, "ID read before queueing refused: already used")
        await store.set_request(session_id, message.request_id, customer)

    async def _id_read(
        self, desk: Desk, terminal_id: str, message: wire.Request
    ) -> dict[str, Any] | None:
        """The masked data of the request's before-queue ID read if it verifies and the card
        passed its checks; None otherwise (the customer queues all the same, and the teller
        asks the terminal in the call)."""
        if message.id_read is None or self.check_id_read is None:
            return None
        used = {message.request_id} if await store.request_known(message.request_id) else set()
        try:
            masked = self.check_id_read(terminal_id, message, used)
        except WorkflowError as err:
            self._refused(terminal_id, f"ID read before queueing refused: {err}")
            return None
        if message.id_read.outcome != "passed":
            return None  # the screen told the customer why; the teller reads it again
        return masked

    async def held_id_read(self, session_id: str) -> dict[str, Any] | None:
        """The masked fields of the before-queue read held for the session, if any."""
        return None if self.id_reads is None else await self.id_reads.masked(session_id)

    async def use_id_read(self, desk: Desk, session_id: str) -> bool:
        """The teller reached ``id_card_read``: take the read made before queueing, if one
        is held for the session, and tell the teller as for an in-call result. False when
        there is none (ask the terminal). Once: a second call (here or on another
        replica) finds none."""
        terminal_id = desk.terminal_of(session_id)
        if self.id_reads is None or terminal_id is None:
            return False
        answer = await self.id_reads.take(terminal_id, session_id)
        if answer is None:
            return False
        teller = desk.watcher_of(session_id)
        if teller is not None:
            message = {"type": "step_result", "session": session_id, "step": "id_card_read",
                       "before_queue": True, **answer}  # fmt: skip
            await desk.notify(f"teller:{teller}", message)
        return True

    async def _late(self, desk: Desk, terminal_id: str, session_id: str) -> bool:
        """A hang-up or cancel for the terminal's own session that a restarted desk ended
        (``store.RESTARTED``): accepted, and answered with how it ended so the terminal
        can close its screen. False if the message is not such a one (a session the
        terminal gave up by asking again is still refused: it is no longer theirs)."""
        if desk.terminal_of(session_id) is not None:
            return False
        finished = await store.finished_of_terminal(session_id, terminal_id)
        if finished is None or finished[1] != store.RESTARTED:
            return False
        state, cause = finished
        self.stats.late += 1
        log.info("terminal %s: late hang-up of %s session %s", terminal_id, state, session_id)
        end = wire.Failed if state is State.FAILED else wire.Ended
        await self.send(terminal_id, end(session_id, cause).to_dict())
        return True

    def _owns(self, desk: Desk, terminal_id: str, session_id: str) -> bool:
        if desk.terminal_of(session_id) == terminal_id:
            return True
        self._refused(terminal_id, f"session {session_id} is not its live session")
        return False

    def _refused(self, terminal_id: str, why: str) -> None:
        self.stats.refused += 1
        log.warning("terminal %s: refused: %s", terminal_id, why)

    async def _refuse(self, terminal_id: str, request_id: str, reason: str) -> None:
        self._refused(terminal_id, reason)
        await self.send(terminal_id, wire.Refused(request_id, reason).to_dict())


def _request_id_of(payload: bytes) -> str | None:
    """The request id of a malformed request, when there is one to answer to."""
    try:
        obj: Any = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(obj, dict) or obj.get("type") != "request":
        return None
    request_id = obj.get("request_id")
    return request_id if isinstance(request_id, str) and len(request_id) <= 64 else None
