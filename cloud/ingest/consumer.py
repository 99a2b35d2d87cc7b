"""The ingest consumer: a thin asyncio shell around ``classify``.

Telemetry comes through an MQTT 5 shared subscription (``$share/<group>/...``), so several
consumers split the load. Events and status are low-volume and subscribed plainly by every
consumer: a plain subscription in a persistent session survives a broker restart in
Mosquitto (a shared one does not), so no business event is lost while ingest reconnects,
and the (terminal, seq) key makes the copies each consumer stores collapse into one. Status
subscriptions also bring every terminal's retained presence on start. Command replies come
the same way (``on_replies``, recorded by fleet's sender on every replica), so a reply that
arrives while the leading replica dies is recorded by another.

Telemetry points are written to the store in batches (size or time, whichever first);
terminal state is coalesced to one database update per terminal per flush; events are
inserted with the (terminal, seq) unique key, so repeats insert nothing.

Acknowledgement is manual: a QoS 1 message is acknowledged to the broker only after the
flush holding it has committed to the database and the telemetry store has answered. A
consumer killed before that gets the message again from its persistent session, and the
(terminal, seq) keys drop the copy. After the same flush, each terminal is told which of its
sequence numbers are now stored (``cuntong/v1/t/<id>/ack``, ``common.wire.ack``): its spool
keeps every message until then, so a broker killed with messages it had acknowledged but
not delivered or saved, or restarted without ingest's shared subscription, loses nothing;
the terminal sends them again.

Telemetry at or below a terminal's high-water mark is written again rather than dropped: a
spool's re-send can arrive after newer samples (the broker lost the first copy), and
VictoriaMetrics' 1 ms de-duplication keeps one point per timestamp, so a real repeat costs a
write and a lost-then-resent sample is not thrown away as a repeat.

Messages that are authentic but cannot be trusted or stored (timestamp outside the receive
window, a sequence jump, a row the store refuses) go to the dead-letter table
(``cloud.ingest.models``) so one terminal cannot stop the rest; they are confirmed too (the
cloud holds them). A malformed message has no sequence number to confirm, and an event with a
wrong MAC is not confirmed: the terminal keeps them and sends them again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum

import aiomqtt
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from tortoise import Tortoise

from cloud import lease
from cloud.ingest.classify import (
    MAX_SALVAGE_BYTES,
    IngestStats,
    Seen,
    TelemetryDeduper,
    Window,
    classify,
    kept_payload,
)
from cloud.ingest.models import IngestDeadLetter
from cloud.ingest.poison import write_isolating
from cloud.models import Terminal, TerminalEvent
from cloud.security import INGEST_PRESENCE, Security, service_client, service_client_id
from cloud.tsdb import TelemetryWriter, line_for
from common import envelope, topics
from common.errors import WireError
from common.mqtt_link import SESSION_NEVER_EXPIRES, keep_connected
from common.periodic import run_every
from common.settings import BrokerEndpoint, CloudSettings
from common.wire import ack as stored_ack
from common.wire.refusal import BrokerRefusal

log = logging.getLogger("cuntong.ingest")

REGION_KEYS = ("province", "city", "county", "village")

#: The broker queues messages for a disconnected consumer (at most ``max_queued_messages``)
#: until it is back: the session never expires (``SESSION_NEVER_EXPIRES``, the reload crash of
#: Mosquitto 2.0.11), like the telemetry link's MQTT 3.1.1 persistent session always did. Its
#: client id is stable per service instance, so a restart takes the same session over.
SESSION_EXPIRY_S = SESSION_NEVER_EXPIRES


def _user_property(message: aiomqtt.Message, name: str) -> str | None:
    props = message.properties
    for key, value in getattr(props, "UserProperty", None) or []:
        if key == name:
            return str(value)
    return None


def _dt(ts_ms: int) -> datetime:
    return datetime.fromtimestamp(ts_ms / 1000, UTC)


#: How often a running ingest renews its presence row (``cloud.lease.present``) at most;
#: more often when ``ingest_retire_after_s`` is short.
PRESENCE_EVERY_S = 10.0


class Link(Enum):
    BUSINESS = ""
    TELEMETRY = "-telemetry"

    @property
    def suffix(self) -> str:
        """Appended to the service instance: each link has its own certificate/client id."""
        return str(self.value)


#: The suffixes of an ingest instance's links (their certificates and client ids).
LINK_SUFFIXES = tuple(link.suffix for link in Link)

_REPLY_SUFFIX = "/" + topics.Channel.CMD_REPLY.value
#: Acknowledges one received message to the broker (its PUBACK), once it is stored.
Ack = Callable[[], None]


@dataclass
class _Pending:
    points: list[str] = field(default_factory=list)
    telemetry: list[envelope.Telemetry] = field(default_factory=list)
    events: list[envelope.Event] = field(default_factory=list)
    #: Latest presence per terminal, in arrival order (the will carries an old timestamp).
    status: dict[str, envelope.Status] = field(default_factory=dict)
    dead: list[IngestDeadLetter] = field(default_factory=list)
    #: Every message in (or dropped from) this batch, acknowledged after it is stored.
    acks: list[Ack] = field(default_factory=list)
    #: Per terminal, the sequence numbers this batch stores (or already held, or
    #: dead-letters): confirmed to the terminal after the batch is stored.
    confirm: dict[str, set[int]] = field(default_factory=dict)
    #: Command replies: command id -> (terminal id from the topic, payload).
    replies: dict[str, tuple[str, bytes]] = field(default_factory=dict)

    def stored(self, terminal_id: str, seq: int) -> None:
        self.confirm.setdefault(terminal_id, set()).add(seq)

    def __len__(self) -> int:
        # Messages from the broker each bring an ack; ``handle`` called directly brings none.
        return max(
            len(self.acks),
            len(self.points) + len(self.events) + len(self.status) + len(self.replies),
        )

    def absorb(self, newer: _Pending) -> None:
        """Take what arrived while this batch was being written, after this batch."""
        self.points.extend(newer.points)
        self.telemetry.extend(newer.telemetry)
        self.events.extend(newer.events)
        self.dead.extend(newer.dead)
        self.acks.extend(newer.acks)
        self.replies.update(newer.replies)
        for tid, seqs in newer.confirm.items():
            self.confirm.setdefault(tid, set()).update(seqs)
        for tid, st in newer.status.items():
            self.status.pop(tid, None)
            self.status[tid] = st


def _acker(client: aiomqtt.Client, mid: int, qos: int) -> Ack:
    def ack() -> None:
        # After a reconnect this is the old session's client: the ack goes nowhere, and the
        # broker redelivers the message to the new session, where (terminal, seq) drops it.
        client._client.ack(mid, qos)  # aiomqtt exposes no manual ack

    return ack


class IngestConsumer:
    def __init__(
        self, settings: CloudSettings, writer: TelemetryWriter, security: Security | None = None
    ) -> None:
        self.s = settings
        self.writer = writer
        self.security = security
        self.stats = IngestStats()
        self.window = Window(
            past_ms=int(settings.ingest_ts_past_s * 1000),
            future_ms=int(settings.ingest_ts_future_s * 1000),
        )
        self.dedup = TelemetryDeduper(
            max_step=settings.ingest_max_seq_step, future_ms=self.window.future_ms
        )
        #: Set while flushes fail; /healthz reports ingest degraded meanwhile.
        self.write_failing = False
        self.ready = asyncio.Event()
        self._pending = _Pending()
        self._known: set[str] = set()
        self._flush_now = asyncio.Event()
        self._lock = asyncio.Lock()
        self._subscribed: set[tuple[Link, BrokerEndpoint]] = set()
        #: The business link on each broker while connected: storage confirmations go out on
        #: every one (a terminal is subscribed on the broker it is connected to; a broker it is
        #: not on drops the publish, and an extra confirmation of a forgotten row is a no-op).
        self._confirmers: dict[BrokerEndpoint, aiomqtt.Client] = {}
        #: Latest telemetry per terminal, written to the database on a slower beat than the
        #: store: the terminals table shows current health, the store keeps the history.
        self._health: dict[str, envelope.Telemetry] = {}
        #: Per-terminal signals, called as ``(terminal_id, signal)``: a rejected message
        #: ("malformed", "oversized", "bad_mac", "quarantined" when dead-lettered) or a
        #: presence change ("online"/"offline").
        #: Fleet's misbehaviour watch listens (``fleet.misbehaviour``).
        self.on_signal: list[Callable[[str, str], None]] = []
        #: Command replies (``cuntong/v1/t/<id>/cmd-reply``), each batch as {command id:
        #: (terminal id, payload)}: every replica's ingest hears them, so a reply that
        #: arrives while the leader (whose sender queued the command) is dying is recorded
        #: by a live replica (fleet's sender records them; doing it twice is harmless).
        #: Awaited inside the flush: a reply is acknowledged to the broker once recorded.
        self.on_replies: list[Callable[[dict[str, tuple[str, bytes]]], Awaitable[None]]] = []
        self._online: dict[str, bool] = {}
        if security is not None:
            self.client_id = security.client_id(settings.service_instance)
        else:
            self.client_id = (
                settings.ingest_client_id
                or f"cuntong-ingest-{settings.ingest_group}-{socket.gethostname()}"
            )[:64]

    def brokers_down(self) -> list[str] | None:
        """The brokers this ingest is not subscribed on (both links), or None when it is
        subscribed on none at all. One broker down of several is a reduced service, not a
        stop: terminals fail over to the others, which ingest still reads."""
        every = self.s.broker_endpoints()
        up = [e for e in every if all((link, e) in self._subscribed for link in Link)]
        return [e.label for e in every if e not in up] if up else None

    async def run(self) -> None:
        loops = [
            asyncio.create_task(self._flush_loop()),
            asyncio.create_task(self._state_loop()),
        ]
        if self.security is not None:  # only secured sessions can be ended by the leader
            loops.append(asyncio.create_task(self._presence_loop()))
        try:
            await self._link_loop()
        finally:
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            await self.flush()
            await self.flush_state()

    async def _link_loop(self) -> None:
        """Two links: business (events, status) over MQTT 5, whose user properties carry the
        event MACs; telemetry over MQTT 3.1.1 in the shared group. Telemetry uses no MQTT 5
        property, and paho decodes a 3.1.1 PUBLISH about 40% cheaper (no per-message
        Properties object), which is most of ingest's cost per sample."""
        # Failover: both links on every broker (a terminal is on one of them at a time;
        # (terminal, seq) drops what a failover sends twice).
        links = [
            asyncio.create_task(self._link(link, e), name=f"ingest-{link.name.lower()}-{e.label}")
            for e in self.s.broker_endpoints()
            for link in (Link.BUSINESS, Link.TELEMETRY)
        ]
        try:
            await asyncio.gather(*links)
        finally:
            for task in links:
                task.cancel()
            await asyncio.gather(*links, return_exceptions=True)

    def _client(self, link: Link, endpoint: BrokerEndpoint) -> aiomqtt.Client:
        client = self._new_client(link, endpoint)
        # Before connecting: the persistent session's queue arrives right after CONNACK.
        client._client.manual_ack_set(True)  # aiomqtt exposes no manual ack
        return client

    def _new_client(self, link: Link, endpoint: BrokerEndpoint) -> aiomqtt.Client:
        identifier = service_client_id(
            self.s, self.security, link.suffix, self.client_id + link.suffix
        )
        if link is Link.TELEMETRY:
            return service_client(
                self.s,
                self.security,
                link.suffix,
                identifier,
                endpoint,
                protocol=aiomqtt.ProtocolVersion.V311,
                clean_session=False,
                max_queued_incoming_messages=200_000,
            )
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        return service_client(
            self.s,
            self.security,
            link.suffix,
            identifier,
            endpoint,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False,
            properties=props,
            max_queued_incoming_messages=200_000,
        )

    async def _link(self, link: Link, endpoint: BrokerEndpoint) -> None:
        def down() -> None:
            self._subscribed.discard((link, endpoint))
            self.ready.clear()
            if link is Link.BUSINESS:
                self._confirmers.pop(endpoint, None)

        await keep_connected(
            lambda: self._client(link, endpoint),
            lambda client: self._consume(link, client, endpoint),
            name=f"ingest {link.name.lower()} ({endpoint.label})",
            base_s=0.5,
            cap_s=5.0,
            on_down=down,
        )

    async def _consume(self, link: Link, client: aiomqtt.Client, endpoint: BrokerEndpoint) -> None:
        group = self.s.ingest_group
        filters = (
            [(topics.subscription(topics.Channel.TELEMETRY, group), 1)]
            if link is Link.TELEMETRY
            else [
                (topics.subscription(topics.Channel.EVENT), 1),
                (topics.subscription(topics.Channel.STATUS), 1),
                (topics.subscription(topics.Channel.CMD_REPLY), 1),
                (topics.BROKER_REFUSED, 1),  # the broker's refusal plugin
            ]
        )
        await client.subscribe(filters)
        if link is Link.BUSINESS:
            self._confirmers[endpoint] = client
        self._subscribed.add((link, endpoint))
        if len(self._subscribed) == len(Link) * len(self.s.broker_endpoints()):
            self.ready.set()
        log.info("ingest %s link subscribed (group %s)", link.name.lower(), group)
        async for message in client.messages:
            payload = message.payload
            if not isinstance(payload, bytes | bytearray):
                payload = b""
            if str(message.topic) == topics.BROKER_REFUSED:
                self._broker_refused(bytes(payload))
                if message.qos:  # acknowledged in the broker's order, with the next flush
                    self._pending.acks.append(_acker(client, message.mid, message.qos))
                continue
            if link is Link.BUSINESS and str(message.topic).endswith(_REPLY_SUFFIX):
                self._reply(str(message.topic), message, bytes(payload))
                if message.qos:  # acknowledged once the batch holding it is recorded
                    self._pending.acks.append(_acker(client, message.mid, message.qos))
                continue
            mac = _user_property(message, "mac") if link is Link.BUSINESS else None
            ack = _acker(client, message.mid, message.qos) if message.qos else None
            await self.handle(str(message.topic), bytes(payload), mac, ack)

    async def handle(
        self, topic_name: str, payload: bytes, mac: str | None = None, ack: Ack | None = None
    ) -> None:
        """Take one message; bad ones are counted and logged, never raised. ``ack`` is
        called after the next flush that stores everything received before it (repeats and
        rejects included, so acknowledgements keep the broker's order)."""
        pending = self._pending
        if ack is not None:
            pending.acks.append(ack)
        self._take(pending, topic_name, payload, mac)
        if len(pending) >= self.s.ingest_batch_size:
            self._flush_now.set()

    def _reply(self, topic_name: str, message: aiomqtt.Message, payload: bytes) -> None:
        """A command's reply: its correlation data is the command id (``fleet.sender``)."""
        corr = getattr(message.properties, "CorrelationData", None)
        try:
            parsed = topics.parse(topic_name)
        except ValueError:
            return
        if not corr or not self.on_replies:
            return
        self._pending.replies[bytes(corr).decode(errors="replace")] = (parsed.terminal_id, payload)
        self._flush_now.set()  # a reply waits for no batch

    def _take(self, pending: _Pending, topic_name: str, payload: bytes, mac: str | None) -> None:
        now_ms = int(time.time() * 1000)
        try:
            msg = classify(topic_name, payload, self.s.max_payload_bytes)
        except WireError as err:
            reason = self.stats.reject(err)
            log.warning("rejected message on %s: %s", topic_name[:120], err)
            self._dead_letter_unparsed(pending, topic_name, payload, mac, reason, str(err), now_ms)
            return
        if (
            isinstance(msg, envelope.Event)
            and self.security is not None
            and not self.security.event_authentic(msg.terminal_id, payload, mac)
        ):
            # Tampered in transit, or not from the terminal's own key: never stored as an
            # event. Kept aside and confirmed: only the terminal's certificate may publish on
            # its topic, and a key that does not match will not match on the next try either.
            self.stats.rejected["bad_mac"] += 1
            self._dead_letter(
                pending, msg, payload, "bad_mac", _mac_problem(mac), now_ms, signal="bad_mac"
            )
            return
        if not isinstance(msg, envelope.Status):
            problem = self.window.problem(msg.ts_ms, now_ms)
            if problem is not None:
                self._dead_letter(pending, msg, payload, "ts_window", problem, now_ms)
                return
        self.stats.accepted[type(msg).__name__.lower()] += 1
        if isinstance(msg, envelope.Status):
            if self._online.get(msg.terminal_id, msg.online) != msg.online:
                self._signal(msg.terminal_id, "online" if msg.online else "offline")
            self._online[msg.terminal_id] = msg.online
            pending.status.pop(msg.terminal_id, None)
            pending.status[msg.terminal_id] = msg
        elif isinstance(msg, envelope.Telemetry):
            seen = self.dedup.check(msg.terminal_id, msg.seq, now_ms)
            if seen is Seen.JUMP:
                detail = f"seq {msg.seq} is beyond the clock or jumps unconfirmed over the mark"
                self._dead_letter(pending, msg, payload, "seq_jump", detail, now_ms)
                return
            pending.stored(msg.terminal_id, msg.seq)
            # A repeat is written again (the store keeps one point per timestamp): it may be
            # a sample the broker lost the first time, re-sent after newer ones arrived.
            pending.points.append(line_for(msg))
            pending.telemetry.append(msg)
            if seen is Seen.REPEAT:
                self.stats.duplicates += 1
            else:
                self._health[msg.terminal_id] = msg
        else:
            pending.events.append(msg)
            pending.stored(msg.terminal_id, msg.seq)

    def _dead_letter_unparsed(
        self,
        pending: _Pending,
        topic_name: str,
        payload: bytes,
        mac: str | None,
        reason: str,
        detail: str,
        now_ms: int,
    ) -> None:
        """Keep a message that did not parse, with its exact bytes, and confirm its sequence
        number when it still has a readable one: the terminal then stops sending it. One
        with none cannot be confirmed (a terminal's own spool never sends such a message)."""
        try:
            parsed = topics.parse(topic_name)
        except ValueError:
            # Not on a terminal's topic: the subscriptions make this unreachable; nobody
            # to attribute it to.
            log.error("message on foreign topic %r dropped", topic_name[:120])
            return
        tid, kind = parsed.terminal_id, parsed.channel.value
        self._signal(tid, reason)
        if (
            parsed.channel is topics.Channel.EVENT
            and self.security is not None
            and not self.security.event_authentic(tid, payload, mac)
        ):
            self.stats.rejected["bad_mac"] += 1
            reason, detail = "bad_mac", f"{_mac_problem(mac)}; also {detail}"
        seq = (
            envelope.salvage_seq(payload, MAX_SALVAGE_BYTES)
            if parsed.channel is not topics.Channel.STATUS
            else None
        )
        if seq is not None:
            pending.stored(tid, seq)
        pending.dead.append(_dead_row(tid, kind, seq, reason, detail, payload, now_ms))
        self.stats.dead_lettered[reason] += 1

    def _dead_letter(
        self,
        pending: _Pending,
        msg: envelope.Telemetry | envelope.Event,
        payload: bytes,
        reason: str,
        detail: str,
        now_ms: int,
        signal: str = "quarantined",
    ) -> None:
        """Keep a message aside instead of storing it, and confirm it."""
        kind = type(msg).__name__.lower()
        log.warning("dead-lettered %s %s/%s: %s", kind, msg.terminal_id, msg.seq, detail)
        pending.dead.append(
            _dead_row(msg.terminal_id, kind, msg.seq, reason, detail, payload, now_ms)
        )
        pending.stored(msg.terminal_id, msg.seq)
        self.stats.dead_lettered[reason] += 1
        self._signal(msg.terminal_id, signal)

    def _broker_refused(self, payload: bytes) -> None:
        """A terminal's SUBSCRIBE the broker refused (its refusal plugin's report): a
        ``subscribe_refused`` for the misbehaviour watch. Only a broker publishes here."""
        try:
            refused = BrokerRefusal.parse(payload)
        except WireError as err:
            log.warning("unreadable refusal report from the broker: %s", err)
            return
        log.warning(
            "broker refused %s's subscription to %r", refused.username, refused.filter[:200]
        )
        if topics.valid_terminal_id(refused.username):
            self._signal(refused.username, "subscribe_refused")

    def _signal(self, terminal_id: str, signal: str) -> None:
        for listener in self.on_signal:
            listener(terminal_id, signal)

    def _write_failed(self, _err: Exception) -> None:
        self.stats.write_errors += 1

    async def _flush_loop(self) -> None:
        # A failed batch stays pending (unacknowledged) and is retried next round; the store
        # may be restarting. Rows it refused on their merits never get here.
        await run_every(
            self.flush, self.s.ingest_flush_ms / 1000, name="ingest flush",
            wake=self._flush_now, first_wait=True, on_error=self._write_failed, backoff_s=1,
            logger=log,
        )  # fmt: skip

    async def _presence_loop(self) -> None:
        """Say this instance is alive, so the leader never retires its sessions
        (``Security.end_retired_ingest``)."""
        name, holder = INGEST_PRESENCE + self.s.service_instance, lease.holder_id()
        every = min(PRESENCE_EVERY_S, self.s.ingest_retire_after_s / 4)
        ttl = every * 3

        async def beat() -> None:
            await lease.present(name, holder, ttl)

        await run_every(beat, every, name="ingest presence", backoff_s=1, logger=log)

    async def _state_loop(self) -> None:
        await run_every(
            self.flush_state, self.s.state_flush_ms / 1000,
            name="terminal state update", first_wait=True,
            on_error=self._write_failed, logger=log,
        )  # fmt: skip

    async def flush_state(self) -> None:
        health, self._health = self._health, {}
        if not health:
            return
        try:
            await self._store_health(health)
        except Exception:
            # Keep whatever is newer than what failed.
            self._health = health | self._health
            raise

    async def flush(self) -> None:
        """Store the pending batch, then acknowledge its messages to the broker.

        Each part is cleared from the batch once written, so a retry after a failure does
        not write it again. A row the store refuses on its merits is found by splitting and
        dead-lettered; the rest of the batch lands."""
        async with self._lock:
            batch = self._pending
            if not len(batch) and not batch.dead:
                return
            self._pending = _Pending()
            try:
                await self._store(batch)
            except Exception:
                self.write_failing = True
                # Put the batch back in front of anything that arrived meanwhile.
                batch.absorb(self._pending)
                self._pending = batch
                raise
            self.write_failing = False
            for ack in batch.acks:
                ack()
        self._confirm(batch.confirm)

    def _confirm(self, confirm: dict[str, set[int]]) -> None:
        """Tell each terminal which of its messages are stored; its spool then forgets them.

        One message per terminal per flush, ranges coalesced, at QoS 0 and straight into
        paho's send queue: a confirmation lost on the way (link down) only makes the
        terminal send again, which it does on every reconnect anyway, so QoS 1 would buy
        nothing but a PUBACK and in-flight tracking per terminal per flush, and awaiting
        each publish held up the next flush (``docs/benchmarks.md``)."""
        clients = list(self._confirmers.values())
        if not confirm or not clients:
            return
        failed = 0
        for tid, seqs in confirm.items():
            name = topics.topic(tid, topics.Channel.ACK)
            body = bytes(stored_ack.Stored.of(seqs))
            for client in clients:
                # aiomqtt's publish awaits the write; paho's queues it (aiomqtt has no
                # fire-and-forget form).
                if client._client.publish(name, body, qos=0).rc != mqtt.MQTT_ERR_SUCCESS:
                    failed += 1
        if failed:
            self.stats.confirm_errors += failed
            log.warning("%d storage confirmations not sent (link down)", failed)

    async def _store(self, batch: _Pending) -> None:
        await self._ensure_terminals(
            {*batch.status, *(t.terminal_id for t in batch.telemetry)}
            | {e.terminal_id for e in batch.events}
        )
        if batch.status:
            await self._store_status(batch.status)
            batch.status = {}
        if batch.points:
            refused = dict(await write_isolating(batch.points, self.writer.write))
            if refused:  # rare: skip rebuilding every line when all landed
                for t in batch.telemetry:
                    err = refused.get(line_for(t))
                    if err is not None:
                        self._refused(batch, t, repr(err))
            self.stats.landed([t.ts_ms for t in batch.telemetry], time.time())
            batch.points, batch.telemetry = [], []
        if batch.events:
            for e, err in await write_isolating(batch.events, self._store_events):
                self._refused(batch, e, repr(err))
            batch.events = []
        if batch.replies:
            for hook in self.on_replies:
                await hook(batch.replies)
            batch.replies = {}
        if batch.dead:
            # A copy of a row already kept (redelivery, re-send, another ingest instance
            # receiving the same event) is dropped by (terminal, kind, seq).
            await IngestDeadLetter.bulk_create(batch.dead, ignore_conflicts=True)
            batch.dead = []

    def _refused(
        self, batch: _Pending, msg: envelope.Telemetry | envelope.Event, detail: str
    ) -> None:
        kind = type(msg).__name__.lower()
        log.error("store refused %s %s/%s: %s", kind, msg.terminal_id, msg.seq, detail)
        now_ms = int(time.time() * 1000)
        row = _dead_row(
            msg.terminal_id, kind, msg.seq, "store_refused", detail, msg.to_bytes(), now_ms
        )
        batch.dead.append(row)
        self.stats.dead_lettered["store_refused"] += 1

    async def _ensure_terminals(self, ids: set[str]) -> None:
        unknown = ids - self._known
        if not unknown:
            return
        existing = await Terminal.filter(id__in=list(unknown)).values_list("id", "telemetry_seq")
        for tid, seq in existing:
            self.dedup.seed(tid, seq)
        missing = unknown - {tid for tid, _ in existing}
        if missing:
            await Terminal.bulk_create([Terminal(id=t) for t in missing], ignore_conflicts=True)
        self._known |= unknown

    async def _store_health(self, health: dict[str, envelope.Telemetry]) -> None:
        """One plain UPDATE per terminal, sent with executemany: for thousands of terminals
        per second this is an order of magnitude faster than the ORM's bulk update."""
        await self._ensure_terminals(set(health))
        conn = Tortoise.get_connection("default")
        postgres = conn.capabilities.dialect == "postgres"
        columns = (
            "health",
            "health_at",
            "last_seen_at",
            "telemetry_seq",
            "versions",
            "agent_version",
        )
        casts = {"health": "::jsonb", "versions": "::jsonb"} if postgres else {}
        marks = [f"${i}" if postgres else "?" for i in range(1, len(columns) + 2)]
        assignments = ", ".join(
            f'"{c}" = {m}{casts.get(c, "")}' for c, m in zip(columns, marks, strict=False)
        )
        sql = f'UPDATE "terminal" SET {assignments} WHERE "id" = {marks[-1]}'
        rows = []
        for t in health.values():
            at = _dt(t.ts_ms)
            body = json.dumps(
                {"metrics": t.metrics, "peripherals": t.peripherals, "peripheral_faults": t.faults}
            )
            versions = json.dumps(t.versions)
            rows.append([body, at, at, t.seq, versions, t.versions.get("agent", ""), t.terminal_id])
        await conn.execute_many(sql, rows)

    async def _store_events(self, events: Sequence[envelope.Event]) -> None:
        if not events:
            return
        rows = [
            TerminalEvent(
                terminal_id=e.terminal_id, seq=e.seq, ts=_dt(e.ts_ms), type=e.type, data=e.data
            )
            for e in events
        ]
        await TerminalEvent.bulk_create(rows, ignore_conflicts=True)

    async def _store_status(self, statuses: dict[str, envelope.Status]) -> None:
        if not statuses:
            return
        now = datetime.now(UTC)
        rows = []
        for st in statuses.values():
            row = Terminal(
                id=st.terminal_id,
                online=st.online,
                status_changed_at=now,
                last_seen_at=now,
                versions=st.versions,
                agent_version=st.versions.get("agent", ""),
                hw_model=st.hw_model,
                **{k: st.region.get(k, "") for k in REGION_KEYS},
            )
            row._saved_in_db = True
            rows.append(row)
        await Terminal.bulk_update(
            rows,
            fields=[
                "online",
                "status_changed_at",
                "last_seen_at",
                "versions",
                "agent_version",
                "hw_model",
                *REGION_KEYS,
            ],
            batch_size=500,
        )


def _mac_problem(mac: str | None) -> str:
    return "event has no MAC" if not mac else f"event MAC {mac[:80]!r} does not verify"


def _dead_row(
    terminal_id: str,
    kind: str,
    seq: int | None,
    reason: str,
    detail: str,
    payload: bytes,
    now_ms: int,
) -> IngestDeadLetter:
    text, note = kept_payload(payload)
    detail = detail.replace("\x00", "\\x00")  # a text column cannot hold NUL
    return IngestDeadLetter(
        terminal_id=terminal_id[:64],
        kind=kind,
        seq=seq,
        reason=reason,
        detail=detail[: 500 - len(note)] + note,
        payload=text,
        received_at=_dt(now_ms),
    )
