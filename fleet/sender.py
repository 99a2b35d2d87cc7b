"""The cloud's command sender: delivers queued commands over MQTT 5 and records replies.

Commands wait in the database (``fleet.store``) until their terminal is online — the sender
follows every terminal's retained presence itself, so a returning terminal gets its queue
at once rather than after the next ingest flush. Each command is signed at delivery (in
secured mode) with a window inside ``MAX_TTL``, published with the terminal's ``cmd-reply``
topic as MQTT 5 response topic and the command id as correlation data. Replies are batched
into the database; a sweep times out unanswered commands and expires unsent ones.

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
from collections.abc import Awaitable, Callable
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cloud.security import Security
from cuntong import envelope, topics
from cuntong.errors import WireError
from cuntong.mqtt_link import keep_connected
from cuntong.settings import CloudSettings
from fleet import lifecycle as lc
from fleet.models import FleetCommand
from fleet.store import apply, as_lifecycle, save
from provisioning.commands import Command, sign_command

log = logging.getLogger("cuntong.fleet.sender")

#: The sender's own service certificate is ``svc.<service_instance>-fleet``; the broker's
#: ACL must list that instance with the ``cloud`` role.
INSTANCE_SUFFIX = "-fleet"
SESSION_EXPIRY_S = 24 * 3600
#: Rows per database round trip (well inside SQLite's and PostgreSQL's parameter limits).
DB_CHUNK = 5000
#: Publishes awaiting their PUBACK at once. aiomqtt scans every pending call on each new
#: one, so ten thousand in flight cost O(n²); a window keeps the pipe full without that.
PUBLISH_WINDOW = 200
SWEEP_S = 0.5

ResultHook = Callable[[FleetCommand], Awaitable[None]]
OnlineHook = Callable[[list[str]], Awaitable[None]]
#: paho builds its property tables in every ``Properties()``; copying a blank one is cheaper,
#: which matters when a broadcast publishes ten thousand commands.
_BLANK_PUBLISH = Properties(PacketTypes.PUBLISH)


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
        self.online: set[str] = set()
        self.ready = asyncio.Event()
        self.on_result: dict[str, ResultHook] = {}
        self.on_online: list[OnlineHook] = []
        #: Called after outcomes are recorded (the rollout engine wakes up on it).
        self.on_recorded: list[Callable[[], None]] = []
        self._wake = asyncio.Event()
        self._came_online: list[str] = []
        self._replies: dict[str, tuple[str, bool, dict[str, Any]]] = {}
        self._replied = asyncio.Event()
        self._lock = asyncio.Lock()
        if security is not None:
            self.client_id = security.client_id(settings.service_instance + INSTANCE_SUFFIX)
        else:
            self.client_id = f"cuntong-fleet-{socket.gethostname()}"[:64]

    def kick(self) -> None:
        """New commands are queued: deliver now rather than at the next beat."""
        self._wake.set()

    async def run(self) -> None:
        sweep = asyncio.create_task(self._sweep_loop(), name="fleet-sweep")
        replies = asyncio.create_task(self._reply_loop(), name="fleet-replies")
        try:
            await self._link_loop()
        finally:
            for task in (sweep, replies):
                task.cancel()
            await asyncio.gather(sweep, replies, return_exceptions=True)

    def _client(self) -> aiomqtt.Client:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        tls = None
        if self.security is not None:
            tls = self.security.mqtt_tls(self.s.service_instance + INSTANCE_SUFFIX, _now())
        return aiomqtt.Client(
            self.s.broker_host,
            self.s.broker_port,
            identifier=self.client_id,
            tls_context=tls,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False,
            properties=props,
            max_queued_incoming_messages=200_000,
            max_inflight_messages=2000,
            timeout=10,
        )

    async def _link_loop(self) -> None:
        def down() -> None:
            self.ready.clear()
            self.online.clear()

        await keep_connected(
            self._client, self._serve, name="fleet sender", base_s=0.5, cap_s=5.0, on_down=down
        )

    async def _serve(self, client: aiomqtt.Client) -> None:
        await client.subscribe(
            [
                (topics.subscription(topics.Channel.STATUS), 1),
                (topics.subscription(topics.Channel.CMD_REPLY), 1),
            ]
        )
        deliver = asyncio.create_task(self._deliver_loop(client))
        self.ready.set()
        try:
            async for message in client.messages:
                await self._handle(message)
        finally:
            deliver.cancel()
            await asyncio.gather(deliver, return_exceptions=True)

    async def _handle(self, message: aiomqtt.Message) -> None:
        payload = message.payload if isinstance(message.payload, bytes) else b""
        try:
            parsed = topics.parse(str(message.topic))
        except ValueError:
            return
        tid = parsed.terminal_id
        if parsed.channel is topics.Channel.STATUS:
            try:
                online = envelope.parse_status(payload, tid).online
            except WireError:
                return
            if online and tid not in self.online:
                self.online.add(tid)
                self._came_online.append(tid)  # hooks run in batches before delivery
                self._wake.set()
            elif not online:
                self.online.discard(tid)
            return
        corr = getattr(message.properties, "CorrelationData", None)
        if not corr:
            return
        ok, result = _reply(payload)
        self._replies[bytes(corr).decode(errors="replace")] = (tid, ok, result)
        self._replied.set()

    # --- delivery ------------------------------------------------------------------------

    async def _deliver_loop(self, client: aiomqtt.Client) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 1.0)
            self._wake.clear()
            await self.deliver(client)

    async def deliver(self, client: aiomqtt.Client) -> int:
        """Send every queued command whose terminal is online; returns how many were sent."""
        if self._came_online:
            back, self._came_online = self._came_online, []
            for hook in self.on_online:
                await hook(back)
        queued = await FleetCommand.filter(state=lc.State.QUEUED.value).values_list(
            "id", "terminal_id"
        )
        ids = [cid for cid, tid in queued if tid in self.online]
        publishing: list[FleetCommand] = []
        for start in range(0, len(ids), DB_CHUNK):
            async with self._lock:
                rows = await FleetCommand.filter(
                    id__in=ids[start : start + DB_CHUNK], state=lc.State.QUEUED.value
                )
                now = self.clock()
                for row in rows:
                    apply(row, lc.deliver(as_lifecycle(row), now))
                await save(rows, ("state", "sent_at", "finished_at", "deadline_at"))
            publishing += [r for r in rows if r.state == lc.State.SENT.value]
        # Marked sent before publishing, so a fast reply always finds its command "sent";
        # all publishes are in flight together (the broker acknowledges them in a stream).
        window = asyncio.Semaphore(PUBLISH_WINDOW)

        async def publish(row: FleetCommand) -> None:
            async with window:
                await self._publish(client, row, row.sent_at or now)

        try:
            await asyncio.gather(*(publish(r) for r in publishing))
        except aiomqtt.MqttError:
            await FleetCommand.filter(
                id__in=[r.id for r in publishing], state=lc.State.SENT.value
            ).update(state=lc.State.QUEUED.value, sent_at=None)
            raise
        return len(publishing)

    async def _publish(self, client: aiomqtt.Client, row: FleetCommand, now: dt.datetime) -> None:
        if self.security is not None:
            issued, expires = lc.signature_window(as_lifecycle(row), now)
            command = Command(row.id, row.terminal_id, row.name, row.args, issued, expires)
            payload = sign_command(self.security.keys.command_key, command)
        else:
            payload = json.dumps(row.args, ensure_ascii=False).encode()
        props = copy.copy(_BLANK_PUBLISH)
        props.ResponseTopic = topics.topic(row.terminal_id, topics.Channel.CMD_REPLY)
        props.CorrelationData = row.id.encode()
        await client.publish(
            topics.topic(row.terminal_id, topics.Channel.CMD, row.name),
            payload,
            qos=1,
            properties=props,
            timeout=15,
        )

    # --- replies and timeouts ------------------------------------------------------------

    async def _reply_loop(self) -> None:
        while True:
            await self._replied.wait()
            await asyncio.sleep(0.05)  # gather a burst into one write
            self._replied.clear()
            batch, self._replies = self._replies, {}
            try:
                await self.record_replies(batch)
            except Exception:  # a database hiccup must not stop reply recording for good
                log.exception("recording %d replies failed", len(batch))

    async def record_replies(self, batch: dict[str, tuple[str, bool, dict[str, Any]]]) -> None:
        ids = list(batch)
        done: list[FleetCommand] = []
        for start in range(0, len(ids), DB_CHUNK):
            async with self._lock:
                rows = await FleetCommand.filter(id__in=ids[start : start + DB_CHUNK])
                now = self.clock()
                for row in rows:
                    tid, ok, result = batch[row.id]
                    # Only the addressed terminal can answer (the topic names who sent it).
                    if tid != row.terminal_id or row.state != lc.State.SENT.value:
                        continue
                    apply(row, lc.on_reply(as_lifecycle(row), ok, now))
                    row.result = result
                    done.append(row)
                await save(rows, ("state", "finished_at", "deadline_at", "result"))
        self._recorded(done)
        for row in done:
            hook = self.on_result.get(row.name)
            if hook is not None:
                await hook(row)

    def _recorded(self, rows: list[FleetCommand]) -> None:
        if rows:
            for callback in self.on_recorded:
                callback()

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_S)
            try:
                await self.sweep()
            except Exception:
                log.exception("command sweep failed")

    async def sweep(self) -> int:
        """Time out sent commands past their deadline and expire queued ones past expiry."""
        async with self._lock:
            now = self.clock()
            rows = await FleetCommand.filter(
                state__in=[lc.State.QUEUED.value, lc.State.SENT.value], deadline_at__lte=now
            )
            for row in rows:
                apply(row, lc.tick(as_lifecycle(row), now))
                if row.state == lc.State.TIMED_OUT.value:
                    row.result = {"error": "no reply in time"}
            await save(rows, ("state", "finished_at", "deadline_at", "result"))
        self._recorded(rows)
        for row in rows:
            hook = self.on_result.get(row.name)
            if hook is not None:
                await hook(row)
        return len(rows)
