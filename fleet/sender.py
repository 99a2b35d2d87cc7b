"""The cloud's command sender: delivers queued commands over MQTT 5 and records replies.

Commands wait in the database (``fleet.store``) until their terminal is online — the sender
follows every terminal's retained presence itself, on every broker of the failover list
(``CloudSettings.broker_endpoints``; a command goes through the broker its terminal is on,
``common.failover.Presence``), so a returning terminal gets its queue
at once rather than after the next ingest flush. Each command is signed at delivery (in
secured mode) with a window inside ``MAX_TTL``, published with the terminal's ``cmd-reply``
topic as MQTT 5 response topic and the command id as correlation data. A sweep times out
unanswered commands and expires unsent ones.

With API replicas the sender is a singleton run by the lease holder (``cloud.lease``); the
marking of commands as sent is fenced by the lease's epoch, so no two replicas send one
command. Replies are not the leader's: every replica's ingest hears them
(``IngestConsumer.on_replies``) and hands them to ``record_replies`` here, which records
each command once whichever replicas hear it (the rows are locked before they are read),
so a reply that arrives while the leader dies is recorded by a live replica. In secured
mode a new term sends again the commands still waiting for a reply (the previous leader may
have marked them sent and died before publishing): the terminal runs a command id once
(its replay cache, ``edge.replay``) and refuses a repeat as ``replayed``, a refusal the
sender ignores, so the original reply (or the timeout) settles the command.

Hooks (``on_result[name]``, ``on_online``) let shadows and rollouts react without the
sender knowing them.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime as dt
import json
import logging
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiomqtt
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from tortoise.transactions import in_transaction

from cloud import LeaseLost, Security, fenced, service_client, service_client_id
from common import envelope, failpoints, topics
from common.aio import within
from common.errors import WireError
from common.failover import Presence
from common.mqtt_link import SESSION_NEVER_EXPIRES, keep_connected
from common.periodic import run_every
from common.settings import BrokerEndpoint, CloudSettings
from common.wire.commands import Command, sign_command
from fleet import lifecycle as lc
from fleet.models import FleetCommand
from fleet.store import apply, as_lifecycle, lock_open, update_many

log = logging.getLogger("cuntong.fleet.sender")

#: The sender's own service certificate is ``svc.<service_instance>-fleet``; the broker's
#: ACL must list that instance with the ``cloud`` role.
INSTANCE_SUFFIX = "-fleet"
#: Never expires (``SESSION_NEVER_EXPIRES``: Mosquitto 2.0.11's reload crash); the client id
#: is stable per instance, and the leader ends other instances' sessions
#: (``cloud.security.Security.sweep_sessions``).
SESSION_EXPIRY_S = SESSION_NEVER_EXPIRES
#: Rows per database round trip (well inside SQLite's and PostgreSQL's parameter limits).
DB_CHUNK = 5000
#: How long the broker may go without acknowledging any of a delivery run, how often to look.
PUBLISH_TIMEOUT_S = 15.0
PUBACK_POLL_S = 0.02
#: Publishes in flight to the broker at once (paho queues the rest and sends one per PUBACK).
MAX_INFLIGHT = 100
SWEEP_S = 0.5
#: The states a reply settles (see ``CommandSender.record_replies``).
_ANSWERABLE = (lc.State.SENT, lc.State.QUEUED)

ResultHook = Callable[[FleetCommand], Awaitable[None]]
OnlineHook = Callable[[list[str]], Awaitable[None]]
#: paho builds its property tables in every ``Properties()``; copying a blank one is cheaper,
#: which matters when a broadcast publishes ten thousand commands.
_BLANK_PUBLISH = Properties(PacketTypes.PUBLISH)


@dataclass(frozen=True, slots=True)
class _Outgoing:
    """A command on its way out, as delivered (``command.state`` is SENT)."""

    id: str
    terminal_id: str
    name: str
    args: dict[str, Any]
    command: lc.Lifecycle


def _acked(info: mqtt.MQTTMessageInfo) -> bool:
    """The broker acknowledged it (a publish refused by paho never will be)."""
    return info.rc == mqtt.MQTT_ERR_SUCCESS and info.is_published()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _reply(payload: bytes) -> tuple[bool, dict[str, Any]]:
    try:
        obj = json.loads(payload)
        ok, result = obj["ok"], obj.get("result", {})
        if not isinstance(ok, bool) or not isinstance(result, dict):
            raise TypeError("ok must be a boolean and result an object")
    except (ValueError, KeyError, TypeError) as err:
        return False, {"error": f"unreadable reply: {err}"}
    return ok, result


class CommandSender:
    def __init__(
        self,
        settings: CloudSettings,
        security: Security | None = None,
        clock: Callable[[], dt.datetime] = _now,
    ) -> None:
        self.s = settings
        self.security = security
        self.clock = clock
        #: Failover: one link per broker; each terminal's commands go through the broker
        #: its latest retained status came from.
        self.endpoints = settings.broker_endpoints()
        self.presence: Presence[int] = Presence()
        self._clients: dict[int, aiomqtt.Client] = {}
        self.ready = asyncio.Event()
        self.on_result: dict[str, ResultHook] = {}
        self.on_online: list[OnlineHook] = []
        #: Called after outcomes are recorded (the rollout engine wakes up on it).
        self.on_recorded: list[Callable[[], None]] = []
        self._wake = asyncio.Event()
        self._came_online: list[str] = []
        self._lock = asyncio.Lock()
        self.client_id = service_client_id(
            settings, security, INSTANCE_SUFFIX, f"cuntong-fleet-{socket.gethostname()}"
        )

    def kick(self) -> None:
        """New commands are queued: deliver now rather than at the next beat."""
        self._wake.set()

    async def run(self) -> None:
        if self.security is not None:
            await self._send_again()
        sweep = asyncio.create_task(self._sweep_loop(), name="fleet-sweep")
        try:
            await self._link_loop()
        finally:
            sweep.cancel()
            await asyncio.gather(sweep, return_exceptions=True)

    async def _send_again(self) -> None:
        """A new term: queue again what is still waiting for a reply. The previous leader
        may have marked it sent and died before publishing; a terminal that did get it
        refuses the repeat as ``replayed`` (ignored: ``record_replies``). Secured mode only:
        in development mode commands carry no id the terminal checks."""
        async with fenced():
            ids = await FleetCommand.filter(
                state=lc.State.SENT.value, deadline_at__gt=self.clock()
            ).values_list("id", flat=True)
            await self._requeue([str(cid) for cid in ids])
        if ids:
            log.info("%d commands awaiting a reply at the takeover: sending again", len(ids))

    def _client(self, endpoint: BrokerEndpoint) -> aiomqtt.Client:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        return service_client(
            self.s,
            self.security,
            INSTANCE_SUFFIX,
            self.client_id,
            endpoint,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False,
            properties=props,
            max_queued_incoming_messages=200_000,
            # paho scans its in-flight messages on every PUBACK to find the next queued one
            # to send: with a broadcast queued, the window bounds that scan (2,000 cost
            # 20 million steps per 10,000 commands).
            max_inflight_messages=MAX_INFLIGHT,
        )

    async def _link_loop(self) -> None:
        """One link per broker (failover: a terminal is on one of them at a time), and one
        delivery loop that sends each command through the broker its terminal is on."""
        links = [
            asyncio.create_task(self._link(i, e), name=f"fleet-link-{e.label}")
            for i, e in enumerate(self.endpoints)
        ]
        deliver = asyncio.create_task(self._deliver_loop(), name="fleet-deliver")
        try:
            await asyncio.gather(*links, deliver)
        finally:
            for task in (*links, deliver):
                task.cancel()
            await asyncio.gather(*links, deliver, return_exceptions=True)

    async def _link(self, index: int, endpoint: BrokerEndpoint) -> None:
        def down() -> None:
            self._clients.pop(index, None)
            self.ready.clear()
            self.presence.broker_lost(index)

        await keep_connected(
            lambda: self._client(endpoint),
            lambda client: self._serve(index, client),
            name=f"fleet sender ({endpoint.label})",
            base_s=0.5,
            cap_s=5.0,
            on_down=down,
        )

    async def _serve(self, index: int, client: aiomqtt.Client) -> None:
        # Presence only: replies reach every replica through its ingest (``record_replies``).
        await client.subscribe([(topics.subscription(topics.Channel.STATUS), 1)])
        self._clients[index] = client
        if len(self._clients) == len(self.endpoints):
            self.ready.set()
        try:
            async for message in client.messages:
                await self._handle(index, message)
        finally:
            self._clients.pop(index, None)

    @property
    def online(self) -> set[str]:
        """Terminals online on some broker this sender is linked to."""
        return self.presence.online()

    async def _handle(self, index: int, message: aiomqtt.Message) -> None:
        payload = message.payload if isinstance(message.payload, bytes) else b""
        try:
            parsed = topics.parse(str(message.topic))
        except ValueError:
            return
        tid = parsed.terminal_id
        if parsed.channel is topics.Channel.STATUS:
            try:
                status = envelope.parse_status(payload, tid)
            except WireError:
                return
            if self.presence.update(tid, index, status.online, status.ts_ms):
                self._came_online.append(tid)  # hooks run in batches before delivery
                self._wake.set()

    # --- delivery ------------------------------------------------------------------------

    async def _deliver_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await within(self._wake.wait(), 1.0)
            self._wake.clear()
            try:
                await self.deliver()
            except aiomqtt.MqttError as err:  # requeued; that broker's link reconnects
                log.warning("delivery interrupted: %s", err)
            except LeaseLost as err:  # another replica leads now: this one stops sending
                log.warning("delivery refused: %s", err)

    async def deliver(self) -> int:
        """Send every queued command whose terminal is online, each through the broker it
        is on; returns how many were sent."""
        if self._came_online:
            back, self._came_online = self._came_online, []
            for hook in self.on_online:
                await hook(back)
        # Plain values, not ORM objects: a broadcast is ten thousand rows, and building a
        # model (five parsed datetimes) per row cost more than the query.
        queued = await FleetCommand.filter(state=lc.State.QUEUED.value).values_list(
            "id", "terminal_id", "name", "args", "created_at", "expires_at", "timeout_s"
        )
        now = self.clock()
        outgoing: dict[int, list[_Outgoing]] = {}
        updates: list[list[Any]] = []
        for cid, tid, name, args, created, expires, timeout_s in queued:
            broker = self.presence.where(tid)
            if broker is None or broker not in self._clients:
                continue
            c = lc.deliver(lc.Lifecycle(lc.State.QUEUED, created, expires, timeout_s), now)
            updates.append([c.state.value, c.sent_at, c.finished_at, c.deadline, cid])
            if c.state is lc.State.SENT:
                outgoing.setdefault(broker, []).append(_Outgoing(cid, tid, name, args, c))
        # Marked sent before publishing, so a fast reply always finds its command "sent".
        # Fenced (``cloud.fenced``): with API replicas, only the lease's current holder
        # marks; a paused old leader's marking is refused (LeaseLost) and it sends nothing.
        async with self._lock, fenced() as conn:
            for start in range(0, len(updates), DB_CHUNK):
                await update_many(
                    ("state", "sent_at", "finished_at", "deadline_at"),
                    updates[start : start + DB_CHUNK],
                    only_in=lc.State.QUEUED,
                    conn=conn,
                )
        if outgoing:
            failpoints.hit("sender-publish")  # marked sent, not yet published
        failed: list[str] = []
        for broker, batch in outgoing.items():
            client = self._clients.get(broker)
            try:
                if client is None:  # the link dropped meanwhile: back to the queue
                    await self._requeue([o.id for o in batch])
                    raise aiomqtt.MqttError(f"{len(batch)} commands: broker link down")
                await self._publish_all(client, batch)
            except aiomqtt.MqttError as err:
                failed.append(f"{self.endpoints[broker].label}: {err}")
        if failed:
            raise aiomqtt.MqttError("; ".join(failed))
        return sum(len(batch) for batch in outgoing.values())

    def _message(self, o: _Outgoing) -> tuple[str, bytes, Properties]:
        if self.security is not None:
            issued, expires = lc.signature_window(o.command, o.command.sent_at or self.clock())
            command = Command(o.id, o.terminal_id, o.name, o.args, issued, expires)
            payload = sign_command(self.security.keys.command_key, command)
        else:
            payload = json.dumps(o.args, ensure_ascii=False).encode()
        props = copy.copy(_BLANK_PUBLISH)
        props.ResponseTopic = topics.topic(o.terminal_id, topics.Channel.CMD_REPLY)
        props.CorrelationData = o.id.encode()
        return topics.topic(o.terminal_id, topics.Channel.CMD, o.name), payload, props

    async def _publish_all(self, client: aiomqtt.Client, outgoing: list[_Outgoing]) -> None:
        """Hand every publish to the MQTT client at once, then wait for all PUBACKs.

        aiomqtt's ``publish`` awaits each PUBACK with its own future and scans every pending
        call per publish; for a broadcast that was the sender's largest cost. paho's own
        ``publish`` only queues the packet (paho keeps ``max_inflight_messages`` in flight and
        sends the rest as acknowledgements come back), so the broker gets one stream.
        Commands not acknowledged (the link dropped, or no PUBACK for ``PUBLISH_TIMEOUT_S``)
        go back to the queue and the link is restarted.
        """
        paho = client._client  # aiomqtt's paho client: queueing a publish is non-blocking
        pending = []
        for o in outgoing:
            topic, payload, props = self._message(o)
            info = paho.publish(topic, payload, qos=1, properties=props)
            pending.append((o.id, info))
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                break  # the link is down: the rest stay queued too
        submitted = len(pending)
        link_down = bool(pending) and pending[-1][1].rc != mqtt.MQTT_ERR_SUCCESS
        loop = asyncio.get_running_loop()
        done, deadline = 0, loop.time() + PUBLISH_TIMEOUT_S
        while done < submitted:
            # One link to one broker acknowledges in order: look from the oldest open one on
            # (checking all ten thousand every poll cost a third of the sender's CPU).
            before = done
            while done < submitted and _acked(pending[done][1]):
                done += 1
            if done == submitted:
                break
            if done > before:
                deadline = loop.time() + PUBLISH_TIMEOUT_S  # a stall, not a long run, fails
            if link_down or loop.time() > deadline:
                unsent = [cid for cid, i in pending[done:] if not _acked(i)]
                unsent += [o.id for o in outgoing[submitted:]]
                await self._requeue(unsent)
                raise aiomqtt.MqttError(f"{len(unsent)} commands not acknowledged by the broker")
            await asyncio.sleep(PUBACK_POLL_S)

    async def _requeue(self, ids: list[str]) -> None:
        for start in range(0, len(ids), DB_CHUNK):
            await FleetCommand.filter(
                id__in=ids[start : start + DB_CHUNK], state=lc.State.SENT.value
            ).update(state=lc.State.QUEUED.value, sent_at=None)

    # --- replies and timeouts ------------------------------------------------------------

    async def take_replies(self, replies: dict[str, tuple[str, bytes]]) -> None:
        """Ingest's hook (``IngestConsumer.on_replies``): {command id: (terminal, payload)}."""
        batch = {cid: (tid, *_reply(payload)) for cid, (tid, payload) in replies.items()}
        await self.record_replies(batch)

    async def record_replies(self, batch: dict[str, tuple[str, bool, dict[str, Any]]]) -> None:
        """Record replies on any replica. Each chunk's rows are locked before they are read
        (``fleet.store.lock_open``), so when two replicas hear the same reply one records it
        and runs its hooks, and the other finds it settled. A command queued again (at a
        takeover, or after a publish the broker did not acknowledge) may have reached its
        terminal all the same: its reply counts too (only the command's own terminal, which
        received the id, can answer it)."""
        ids = list(batch)
        done: list[str] = []
        hooked: list[str] = []
        fields = ("state", "finished_at", "deadline_at", "result")
        for start in range(0, len(ids), DB_CHUNK):
            async with self._lock, in_transaction() as conn:
                chunk = ids[start : start + DB_CHUNK]
                await lock_open(chunk, conn, _ANSWERABLE)
                rows = (
                    await FleetCommand.filter(
                        id__in=chunk, state__in=[s.value for s in _ANSWERABLE]
                    )
                    .using_db(conn)
                    .values_list(
                        "id", "terminal_id", "name", "created_at", "expires_at", "timeout_s",
                        "sent_at", "state",
                    )
                )  # fmt: skip
                now = self.clock()
                updates: dict[str, list[list[Any]]] = {}
                for cid, terminal_id, name, created, expires, timeout_s, sent, was in rows:
                    tid, ok, result = batch[cid]
                    # Only the addressed terminal can answer (the topic names who sent it).
                    if tid != terminal_id:
                        continue
                    if not ok and result.get("reason") == "replayed":
                        # Sent again at a takeover, and the terminal had run it already:
                        # its first reply (or the timeout) settles it.
                        log.info("command %s: a repeat the terminal refused; ignored", cid)
                        continue
                    sent_c = lc.Lifecycle(lc.State.SENT, created, expires, timeout_s, sent or now)
                    c = lc.on_reply(sent_c, ok, now)
                    updates.setdefault(was, []).append(
                        [c.state.value, c.finished_at, c.deadline, result, cid]
                    )
                    done.append(cid)
                    if name in self.on_result:
                        hooked.append(cid)
                for was, values in updates.items():
                    await update_many(fields, values, only_in=lc.State(was), conn=conn)
        self._recorded(done)
        for row in await FleetCommand.filter(id__in=hooked) if hooked else []:
            await self.on_result[row.name](row)

    def _recorded(self, rows: Sequence[object]) -> None:
        if rows:
            for callback in self.on_recorded:
                callback()

    async def _sweep_loop(self) -> None:
        await run_every(self.sweep, SWEEP_S, name="command sweep", first_wait=True, logger=log)

    async def sweep(self) -> int:
        """Time out sent commands past their deadline and expire queued ones past expiry."""
        now = self.clock()
        open_states = (lc.State.QUEUED, lc.State.SENT)
        due = (
            await FleetCommand.filter(
                state__in=[s.value for s in open_states], deadline_at__lte=now
            )
            .limit(DB_CHUNK)
            .values_list("id", flat=True)
        )  # the rest at the next beat
        if not due:
            return 0
        # Locked first, as ``record_replies`` does: a reply another replica is recording
        # right now is either in before this reads, or finds the command timed out.
        async with self._lock, in_transaction() as conn:
            ids = [str(cid) for cid in due]
            await lock_open(ids, conn, open_states)
            rows = await FleetCommand.filter(
                id__in=ids, state__in=[s.value for s in open_states], deadline_at__lte=now
            ).using_db(conn)
            was: dict[str, list[FleetCommand]] = {}
            for row in rows:
                was.setdefault(row.state, []).append(row)
                apply(row, lc.tick(as_lifecycle(row), now))
                if row.state == lc.State.TIMED_OUT.value:
                    row.result = {"error": "no reply in time"}
            fields = ("state", "finished_at", "deadline_at", "result")
            for state, group in was.items():
                # Only if still so: another replica may have recorded a reply meanwhile.
                values = [[*(getattr(r, f) for f in fields), r.id] for r in group]
                await update_many(fields, values, only_in=lc.State(state), conn=conn)
        self._recorded(rows)
        for row in rows:
            hook = self.on_result.get(row.name)
            if hook is not None:
                await hook(row)
        return len(rows)
