"""The edge agent: one MQTT 5 link per terminal, telemetry, events and commands.

Everything the terminal sends goes through the on-disk spool first, so a dropped village link
or an agent restart loses nothing; the drain task sends the spool in order while the broker
is reachable, and a message leaves the spool only when ingest confirms it stored it (on
``cuntong/v1/t/<id>/ack``, ``common.wire.ack``), not on the broker's PUBACK: a broker killed
before it delivered or saved a message loses nothing either. Unconfirmed messages are sent
again on every new connection and after ``ack_timeout_s``. The link reconnects with
full-jitter exponential backoff, each attempt to the next broker of its failover list
(``common.failover``); when a whole round fails, a secured agent asks the enrolment API for
the current list (a broker that moved is followed).

Tasks while running:
- ``_telemetry_loop``: sample health every interval into the spool (runs offline too);
- ``_link_loop``: connect, announce presence (retained; the will says offline), subscribe
  to commands, the teller desk's messages and storage confirmations, then drain the spool
  and answer commands until the link drops;
- the customer screen (``screen_port``) and, in simulation, a customer who asks for a
  video teller now and then (``sim_teller_every_s``); see ``edge.teller``;
- under a supervisor that asks for it (``NOTIFY_SOCKET``): ready and watchdog
  notifications (``edge.sdnotify``).

Live configuration from the shadow (``common.wire.live_config``) is applied by
``apply_config`` without a restart. ``reboot`` and ``restart_agent`` end ``run`` with
``exit_code`` set to ``RESTART_EXIT``: the supervisor (systemd on a terminal,
``cuntong.supervisor`` in ``cuntong up``) starts the agent again at once.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import logging
import os
import random
import ssl
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import aiomqtt
import httpx
import numpy as np
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from common import __version__, envelope, procs
from common.aio import within
from common.errors import CuntongError, SpoolFull
from common.failover import Rotation
from common.mqtt_link import SESSION_NEVER_EXPIRES, keep_connected
from common.settings import AgentSettings
from common.topics import Channel, command_filter, topic
from common.wire import ack, live_config
from common.wire.call import Grant, before_queue_session
from common.wire.package import PackageRefused
from edge import adapter_slots, agent_slots, alarms, commands, log_upload, ota_slots, sdnotify, wire
from edge.handlers import mdm as mdm_handler
from edge.handlers.mdm import Mdm
from edge.handlers.pinpad import PinPadKeys
from edge.health import HealthSampler
from edge.identity import SecureLink
from edge.liveness import Liveness, camera_frames
from edge.ota import RESTART, Ota, read_slots, save_slots
from edge.ota import Kind as OtaKind
from edge.peripherals import Peripherals
from edge.simulation import SimulatedTerminal
from edge.spool import Entry, Kind, Spool
from edge.steps.card import CardStep, PinStep
from edge.steps.facematch import FaceMatchStep
from edge.steps.idcard import IdCardStep
from edge.steps.liveness import LivenessStep
from edge.steps.paperwork import WHAT, PaperworkStep
from edge.steps.runner import Handler, StepRunner
from edge.teller.client import Peer, TellerClient
from edge.teller.media import CallMedia
from edge.teller.paperwork import Paperwork
from firmware_adapters.iccard.adapter import IcCardReader
from firmware_adapters.idcard.adapter import IdCardReader
from firmware_adapters.pinpad.adapter import PinPad
from firmware_adapters.registry import BUILDERS as ADAPTER_KINDS
from models.bundle import COMPONENT as MODEL_BUNDLE
from provisioning.errors import CommandRefused
from provisioning.protocol import BrokerAddress

if TYPE_CHECKING:
    from edge.vision.facematch import FaceMatcher

log = logging.getLogger("cuntong.agent")
#: An adapter a step borrows (``_opened``).
A = TypeVar("A")
#: Self-test tries a new version gets during its trial before it is rolled back.
TRIAL_SELF_TESTS = 3

DRAIN_WINDOW = 50
RENEW_CHECK_S = 6 * 3600
#: The broker keeps the session (and the commands queued for it) until the cloud ends it,
#: once the terminal has been away a week (``cloud.security.Security.sweep_sessions``). Never
#: a finite expiry: Mosquitto 2.0.11 crashes on such sessions after a reload
#: (``SESSION_NEVER_EXPIRES``).
SESSION_EXPIRY_S = SESSION_NEVER_EXPIRES
RESTART_EXIT = procs.RESTART_EXIT
DEFAULT_VOICE_VOLUME = 80  # the screen's prompts until the live configuration says otherwise


class Agent:
    def __init__(
        self,
        settings: AgentSettings,
        *,
        clock: Callable[[], float] = time.time,
        draw: Callable[[], float] = random.random,
        link: SecureLink | None = None,
    ) -> None:
        self.s = settings
        self.tid = settings.terminal_id
        self._clock = clock
        self._draw = draw
        self.link = link
        self.spool = Spool(
            settings.state_dir / "spool.sqlite3", settings.spool_max_rows, self._ms()
        )
        self.sim = (
            SimulatedTerminal(seed=zlib.crc32(self.tid.encode())) if settings.simulate else None
        )
        self.rtt_ms: float | None = None
        self.connected = asyncio.Event()
        self.connects = 0
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._reconfigured = asyncio.Event()
        #: 0, or RESTART_EXIT once a power command asked for a restart.
        self.exit_code = 0
        self.telemetry_interval_s = settings.telemetry_interval_s
        self.sim_customer_every_s = settings.telemetry_interval_s * 2
        self.voice_volume = DEFAULT_VOICE_VOLUME
        self.serial = commands.Serial()  # one command at a time per component
        self.flaps = alarms.Window(alarms.FLAP_SPAN_S)
        self.spool_refused = alarms.Window(alarms.SPOOL_SPAN_S)
        self.link_backoff_s = 0.0
        self.versions = {
            "agent": __version__,
            # The dependency versions the running slot carries (``edge.launcher`` says which).
            **agent_slots.running_deps(settings.state_dir, os.environ.get(agent_slots.SLOT_ENV)),
        }
        # Adapter packages: count trial starts (a crash loop goes back), then build each
        # configured device with its active slot's driver (``edge.adapter_slots``).
        self._adapters_rolled = adapter_slots.prepare(settings.state_dir, clock())
        self.adapters = adapter_slots.load(settings.state_dir)
        self.peripherals = Peripherals.from_config(
            settings.peripherals_file, self.sim, self.adapters.builders
        )
        camera = next((a for a in self.peripherals.adapters.values() if a.kind == "camera"), None)
        self.liveness = Liveness(
            camera_frames(camera) if camera else None,
            prompt=self._prompt,
            state_dir=settings.state_dir,
            rt_priority=settings.liveness_rt_priority,
        )
        self.media = CallMedia(
            settings.simulate,
            camera,
            audio_device=settings.audio_device or ("" if settings.simulate else "default"),
            link_kbps=settings.link_kbps,
            link_loss=settings.link_loss,
            face_aware=settings.face_aware,
            echo_cancel=settings.echo_cancel,
            nice=settings.call_media_nice,
            retransmit_share=settings.call_retransmit_share,
            pacing_share=settings.call_pacing_share,
            # The liveness check's models (the committed OTA bundle), loaded once for both.
            models=self.liveness.models,
        )
        self._mqtt: aiomqtt.Client | None = None
        #: Broker failover: the enrolment answer's list (secured) or the settings' (dev mode).
        self.brokers = Rotation(tuple(link.brokers) if link else _dev_brokers(settings))
        self._refresh: asyncio.Task[None] | None = None
        self._refreshed_at = float("-inf")
        self.screen: Any = None  # the customer screen server while it runs
        self._desk_topic = topic(self.tid, Channel.DESK)
        self._ack_topic = topic(self.tid, Channel.ACK)
        #: Sequence number → when it was last sent (monotonic), for messages sent on this
        #: connection and not yet confirmed; ``resends`` counts passes that sent them again.
        self._sent: dict[int, float] = {}
        self.resends = 0
        self.confirmed = 0
        # A simulated terminal answers the teller's forms itself, unless its screen is
        # served: then a person at the demo answers them there.
        auto = settings.simulate and not settings.screen_port
        rng = random.Random(zlib.crc32(self.tid.encode()))
        #: The ID-card step (its photo of this call's card), when there is a reader.
        self.id_step: IdCardStep | None = None
        self.teller = TellerClient(
            self._publish_session,
            self._make_peer,
            lambda send: Paperwork(send, self._capture, auto, rng),
            lambda: datetime.now(UTC),
        )
        self._matcher: FaceMatcher | None = None
        self.camera = camera
        self.teller.steps = self._step_runner(camera)
        self.handlers: dict[str, commands.Handler] = {
            "ping": self._cmd_ping,
            "peripheral_selftest": self._cmd_selftest,
            "liveness_check": self._cmd_liveness,
        }
        # Fleet MDM commands; power actions stop the agent and its supervisor restarts it.
        self.mdm = Mdm(
            settings.state_dir,
            self._power,
            self.apply_config,
            self.spool.wipe,
            uploader=log_upload.from_link(link),
        )
        self.handlers.update(self.mdm.table())
        self.handlers.update(PinPadKeys(self.peripherals.adapters).table())
        trust = link.command_key if link else None  # packages are signed by the command key
        kinds = {
            MODEL_BUNDLE: self.liveness.ota_kind(),  # model bundles: checked, then used
            # The agent itself: a wheel unpacked into a slot, tried in a restarted process.
            agent_slots.COMPONENT: OtaKind(
                validate=_check_agent_wheel,
                unpack=agent_slots.unpack,
                apply_delta=agent_slots.apply_delta,
                release=agent_slots.release_sha256,
                trial_s=settings.agent_trial_s,
            ),
        }
        for device_kind in ADAPTER_KINDS:
            # Peripheral drivers: unpacked into a slot, loaded by the restarted agent, tried
            # with the device's self-test.
            kinds[adapter_slots.component(device_kind)] = OtaKind(
                validate=self._adapter_check(device_kind),
                unpack=adapter_slots.unpacker(device_kind),
                trial_s=settings.agent_trial_s,
            )
        self.ota = Ota(
            settings.state_dir,
            trust,
            self.emit_event,
            kinds=kinds,
            restart=self._power,
            clock=clock,
            known_only=(adapter_slots.PREFIX,),
        )
        self.handlers.update(self.ota.table())
        extra: dict[str, Callable[[], float | None]] = {
            "rtt_ms": lambda: self.rtt_ms,
            "spool_depth": lambda: float(self.spool.depth()),
            alarms.SPOOL_REFUSED: lambda: float(self.spool_refused.count(self._clock())),
            alarms.LINK_FLAPS: lambda: float(self.flaps.count(self._clock())),
            alarms.LINK_BACKOFF: lambda: self.link_backoff_s,
        }
        if self.sim is not None:
            extra["temp_c"] = self.sim.temperature
        self.sampler = HealthSampler(settings.state_dir, extra)

    def _ms(self) -> int:
        return int(self._clock() * 1000)

    # --- what the rest of the terminal calls -------------------------------------------

    def emit_event(self, etype: str, data: dict[str, Any]) -> int:
        """Queue a business event; it reaches the cloud once, whenever the link allows.

        Raises ``SpoolFull`` past the spool's hard limit, after counting it in the
        ``spool_refused`` alarm that the next telemetry sample carries."""
        try:
            seq = self.spool.put(Kind.EVENT, self._ms(), {"type": etype, "data": data})
        except SpoolFull:
            self.spool_refused.add(self._clock())
            log.error("spool full: business event %s refused", etype)
            self.record_telemetry()  # the alarm goes out with the next drain
            raise
        self._wake.set()
        return seq

    def record_telemetry(self) -> int:
        peripherals = self.peripherals.states()
        body = {
            "metrics": self.sampler.sample(),
            "peripherals": peripherals,
            "versions": self.all_versions(),
            "peripheral_faults": self.peripherals.fault_counts(),
        }
        seq = self.spool.put(Kind.TELEMETRY, self._ms(), body)
        self._wake.set()
        return seq

    def all_versions(self) -> dict[str, str]:
        """Component versions reported to the fleet: the agent's and the model bundle's."""
        return {**self.versions, **self.liveness.versions(), **self.adapters.versions}

    def stop(self) -> None:
        self._stopping.set()

    def _power(self, action: str) -> None:
        """reboot / restart_agent: end the agent and ask the supervisor for a new start."""
        log.warning("%s requested: exiting for the supervisor to start the agent again", action)
        self.exit_code = RESTART_EXIT
        self.stop()

    def apply_config(self, config: live_config.LiveConfig) -> None:
        """Apply a checked live configuration now; a field left out returns to the start-up
        setting."""
        self.telemetry_interval_s = config.telemetry_interval_s or self.s.telemetry_interval_s
        link = config.link_kbps or self.s.link_kbps
        self.media.link_kbps = self.media.ceiling_kbps = link
        level = config.log_level or "INFO"
        logging.getLogger("cuntong").setLevel(level)
        if config.screen is not None:
            self.mdm.set_screen(config.screen.locked, config.screen.message)
        self.voice_volume = (
            config.voice_volume if config.voice_volume is not None else DEFAULT_VOICE_VOLUME
        )
        every = config.sim_customer_every_s
        self.sim_customer_every_s = every if every is not None else self.s.telemetry_interval_s * 2
        self._reconfigured.set()  # the loops pick the new periods up at once
        log.info("configuration applied: %s", live_config.reported(config))

    # --- the teller call ---------------------------------------------------------------

    async def _publish_session(self, payload: bytes) -> None:
        """Live call signalling: sent now or not at all (never spooled)."""
        client = self._mqtt
        if client is None or not self.connected.is_set():
            raise ConnectionError("the terminal is offline")
        await client.publish(topic(self.tid, Channel.SESSION), payload, qos=1, timeout=10)

    def _step_runner(self, camera: Any) -> StepRunner | None:
        """The device steps this terminal can perform for the desk, signed with its enrolled
        key; None without one (development mode: the desk's requests go unanswered and only
        a supervisor's override passes those steps)."""
        link = self.link
        if link is None:
            return None
        identity = link.identity

        def credentials() -> tuple[Any, str]:
            return identity.key(), identity.cert_path.read_text()

        return StepRunner(credentials, self.step_handlers(camera), lambda: datetime.now(UTC))

    def step_handlers(self, camera: Any) -> dict[str, Handler]:
        """The device steps this terminal's peripherals can perform (a table)."""
        handlers: dict[str, Handler] = {}
        reader = next((a for a in self.peripherals.adapters.values() if a.kind == "idcard"), None)
        id_step: IdCardStep | None = None
        if isinstance(reader, IdCardReader):
            id_step = IdCardStep(lambda: _opened(reader), lambda: datetime.now(UTC).date())
            handlers["id_card_read"] = id_step
            self.id_step = id_step
            self.teller.on_call_over.append(id_step.photos.clear)
        card = next((a for a in self.peripherals.adapters.values() if a.kind == "iccard"), None)
        if isinstance(card, IcCardReader):
            card_step = CardStep(lambda: _opened(card), lambda: datetime.now(UTC))
            handlers["card_read"] = card_step
            self.teller.on_call_over.append(card_step.pans.clear)  # the number stays no longer
            pad = next(
                (a for a in self.peripherals.adapters.values() if isinstance(a, PinPad)), None
            )
            if pad is not None:
                handlers["pin_entry"] = PinStep(lambda: pad, card_step.pans.get, self._prompt)
        for step in WHAT:  # the customer's signature and voucher photo, over the data channel
            handlers[step] = PaperworkStep(step, lambda: self.teller.paperwork.delivered)
        if camera is not None:
            live = LivenessStep(self.liveness.check, lambda: self.teller.call.business or "")
            handlers["liveness"] = handlers["active_liveness"] = live
            if id_step is not None:
                face = FaceMatchStep(self._face_matcher, self.id_photo, lambda: _one_frame(camera))
                handlers["face_match"] = face
                # The ID photo's face is embedded once, when its read passes, and dropped
                # with the photo when the customer is gone.
                id_step.on_photo = face.id_faces.prepare
                self.teller.on_call_over.append(face.id_faces.clear)
        return handlers

    def id_photo(self, session: str | None) -> bytes | None:
        """The decoded photo of the ID card read for this call: read in the session, or
        before queueing for the request that became it (先刷身份证). Never leaves the
        terminal except to the serving teller's page over the call's data channel."""
        step = self.id_step
        if step is None or session is None:
            return None
        photo = step.photos.get(session)
        call = self.teller.call
        if photo is None and call.session == session and call.request_id:
            photo = step.photos.get(before_queue_session(call.request_id))
        return photo

    async def _capture(self, kind: str) -> bytes | None:
        """What the teller asked to see over the data channel: a camera photo of a
        document, or (``id_photo``) the photo of the ID card read for this call."""
        if kind == "id_photo":
            return self.id_photo(self.teller.call.session)
        return await self.media.capture(kind)

    async def _face_matcher(self) -> FaceMatcher:
        """The face-match models (``models/face_match.json``), loaded at the first match."""
        if self._matcher is None:
            from edge.vision.facematch import FaceMatcher

            detector = (await self.liveness.models()).detector
            self._matcher = await asyncio.to_thread(FaceMatcher.load, detector)
        return self._matcher

    async def _prompt(self, text: str) -> None:
        await self.teller.show_prompt(text)  # the customer screen shows the challenge step

    def _locked(self) -> str | None:
        screen = self.mdm.screen
        return str(screen.get("message") or "暂停服务") if screen.get("locked") else None

    def _make_peer(
        self, grant: Grant, on_text: Callable[[str], None], on_event: Callable[[str], None]
    ) -> Peer:
        from edge.teller.peer import RoomPeer  # aiortc only once a call connects

        claim = self.link.claim if self.link is not None else None
        if claim is None:
            return RoomPeer(grant, self.media, on_text, on_event)
        # The cloud's signalling gate is on the address the terminal enrols at, whose
        # certificate chains to the root in the factory claim.
        tls = ssl.create_default_context(cadata=claim.ca_pem)
        return RoomPeer(
            grant, self.media, on_text, on_event, cloud_url=claim.enrol_url, cloud_tls=tls
        )

    # --- the loops -----------------------------------------------------------------------

    async def run(self) -> None:
        self.ota.on_boot()  # a second start on trial without a commit rolls back
        for comp, version, why in [
            *((c, v, "started again on trial") for c, v in self._adapters_rolled),
            *self.adapters.failed,
        ]:
            self.emit_event(
                "ota_progress",
                {"component": comp, "version": version, "state": "rolled_back", "detail": why},
            )
        try:
            self.apply_config(self.mdm.live())  # the configuration the shadow last set
        except live_config.InvalidConfig as err:
            log.warning("stored configuration ignored: %s", err)
        await self.peripherals.open()
        self.liveness.watch_rt_time()
        tasks = [
            asyncio.create_task(self._telemetry_loop(), name="telemetry"),
            asyncio.create_task(self._link_loop(), name="link"),
        ]
        if self.sim is not None:
            tasks.append(asyncio.create_task(self._customer_loop(), name="customers"))
            if self.s.sim_teller_every_s > 0:
                tasks.append(asyncio.create_task(self._teller_visits(), name="teller-visits"))
        if self.link is not None:
            tasks.append(asyncio.create_task(self._renew_loop(), name="renewal"))
        if sdnotify.watchdog_s() is not None:
            tasks.append(asyncio.create_task(self._watchdog_loop(), name="watchdog"))
        tasks.append(asyncio.create_task(self._agent_trial(), name="agent-trial"))
        tasks.append(asyncio.create_task(self._adapter_trials(), name="adapter-trials"))
        stop = asyncio.create_task(self._stopping.wait())
        screen = contextlib.AsyncExitStack()
        try:
            if self.s.screen_port:
                from edge.teller.screen import Screen
                from edge.teller.voice import Voice

                self.screen = await screen.enter_async_context(
                    Screen(
                        self.teller,
                        self.media,
                        self.s.screen_port,
                        locked=self._locked,
                        voice=Voice(self.s.state_dir / "voice"),
                        volume=lambda: self.voice_volume,
                    )
                )
            sdnotify.notify("READY=1")
            done, _ = await asyncio.wait([*tasks, stop], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stop:
                    task.result()  # a loop that ended on its own is a bug: raise it
        finally:
            sdnotify.notify("STOPPING=1")
            for task in [*tasks, stop]:
                task.cancel()
            await asyncio.gather(*tasks, stop, return_exceptions=True)
            await self.teller.close()
            await screen.aclose()
            await self.peripherals.close()
            self.liveness.close()
            self.spool.close()

    async def _pause(self, seconds: float) -> None:
        """Sleep, or less if the configuration changes (a new period applies at once)."""
        with contextlib.suppress(TimeoutError):
            await within(self._reconfigured.wait(), seconds)

    async def _telemetry_loop(self) -> None:
        while True:
            self.record_telemetry()
            started = self._clock()
            while True:
                self._reconfigured.clear()
                left = started + self.telemetry_interval_s - self._clock()
                if left <= 0:
                    break
                await self._pause(left)

    async def _customer_loop(self) -> None:
        assert self.sim is not None
        while True:
            every = self.sim_customer_every_s
            if every <= 0:
                await self._reconfigured.wait()
                await asyncio.sleep(0)
                continue
            await asyncio.sleep(every)
            event = self.sim.customer_event()
            if event:
                with contextlib.suppress(SpoolFull):  # counted in the spool alarm
                    self.emit_event(*event)

    async def _watchdog_loop(self) -> None:
        period = sdnotify.watchdog_s()
        assert period is not None
        while True:
            sdnotify.notify("WATCHDOG=1")
            await asyncio.sleep(period / 2)

    async def _teller_visits(self) -> None:
        from edge.teller.customer import SimulatedCustomer
        from edge.teller.visits import visits

        customer = SimulatedCustomer(zlib.crc32(self.tid.encode()), self.s.sim_teller_every_s)
        await visits(self.teller, customer)

    def _status(self, online: bool) -> bytes:
        region = {
            k: v
            for k, v in {
                "province": self.s.province,
                "city": self.s.city,
                "county": self.s.county,
                "village": self.s.village,
            }.items()
            if v
        }
        return envelope.Status(
            self.tid, online, self._ms(), self.all_versions(), region, self.s.hw_model
        ).to_bytes()

    def _client(self) -> aiomqtt.Client:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        status_topic = topic(self.tid, Channel.STATUS)
        broker = self.brokers.current  # secured: from the list the cloud handed over
        return aiomqtt.Client(
            broker.host,
            broker.port,
            identifier=self.tid,
            protocol=aiomqtt.ProtocolVersion.V5,
            keepalive=self.s.keepalive_s,
            will=aiomqtt.Will(status_topic, self._status(False), qos=1, retain=True),
            clean_start=False,
            properties=props,
            tls_context=self.link.tls if self.link else None,
            timeout=10,
        )

    async def _link_loop(self) -> None:
        await keep_connected(
            self._client,
            self._online,
            name=f"terminal {self.tid}",
            base_s=self.s.backoff_base_s,
            cap_s=self.s.backoff_cap_s,
            on_down=self._link_down,
            draw=self._draw,
            stable_s=self.s.link_stable_s,
            on_retry=self._on_retry,
        )

    def _link_down(self) -> None:
        """The broker failed (refused, unreachable or dropped): the next attempt goes to the
        next broker of the list; after a full round the cloud is asked for a new list."""
        self.connected.clear()
        failed = self.brokers.current
        nxt = self.brokers.failed()
        if nxt != failed:
            log.warning("broker %s:%d failed; next %s:%d", failed.host, failed.port, *_hp(nxt))
        due = self._clock() - self._refreshed_at >= self.s.broker_list_every_s
        if self.brokers.round_failed and self.link is not None and self._refresh is None and due:
            self._refreshed_at = self._clock()
            self._refresh = asyncio.create_task(self._refresh_brokers(), name="broker-list")

    async def _refresh_brokers(self) -> None:
        assert self.link is not None
        try:
            brokers = await self.link.refresh_brokers()
        except (CuntongError, httpx.HTTPError, OSError, ValueError) as err:
            log.warning("broker list not refreshed (%s); will retry after the next round", err)
            return
        finally:
            self._refresh = None
        if brokers is not None and self.brokers.replace(brokers):
            log.warning("broker list changed: %s", ", ".join(f"{b.host}:{b.port}" for b in brokers))

    def _on_retry(self, attempt: int, wait_s: float) -> None:
        self.link_backoff_s = round(wait_s, 3)
        if attempt > 0:
            self.flaps.add(self._clock())  # a drop before the link proved stable

    async def _online(self, client: aiomqtt.Client) -> None:
        self.connects += 1
        self.brokers.connected()
        await client.publish(
            topic(self.tid, Channel.STATUS), self._status(True), qos=1, retain=True
        )
        for own in (command_filter(self.tid), self._desk_topic, self._ack_topic):
            granted = await client.subscribe(own, qos=1)
            refused = [c for c in granted if int(getattr(c, "value", c)) >= 0x80]
            if refused:
                # Connected but refused its own topics: disabled at the broker (its
                # certificate still connects). Without them it would miss commands and
                # storage confirmations even after being enabled again, so drop the link
                # and retry with backoff until the broker grants them.
                raise aiomqtt.MqttError(f"broker refused subscription to {own}: {refused[0]}")
        self._mqtt = client
        self.connected.set()
        mode = "mTLS" if self.link else "anonymous dev mode"
        log.info("connected to %s:%d (%s)", *_hp(self.brokers.current), mode)
        if self.connects > 1:
            self.teller.link_changed()  # back after a drop: a call on must republish
        try:
            await self._serve(client)
        finally:
            self.connected.clear()
            self._mqtt = None
            if self._stopping.is_set() or asyncio.current_task().cancelling():  # type: ignore[union-attr]
                # A goodbye the cloud sees at once; the will covers the ungraceful case.
                with contextlib.suppress(aiomqtt.MqttError):
                    await client.publish(
                        topic(self.tid, Channel.STATUS),
                        self._status(False),
                        qos=1,
                        retain=True,
                        timeout=2,
                    )

    async def _serve(self, client: aiomqtt.Client) -> None:
        drain = asyncio.create_task(self._drain(client))
        cmds = asyncio.create_task(self._commands(client))
        stop = asyncio.create_task(self._stopping.wait())
        try:
            done, _ = await asyncio.wait([drain, cmds, stop], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stop:
                    task.result()
        finally:
            for task in (drain, cmds, stop):
                task.cancel()
            await asyncio.gather(drain, cmds, stop, return_exceptions=True)

    async def _drain(self, client: aiomqtt.Client) -> None:
        """Send the spool in order. Rows stay until the cloud confirms them (``_on_ack``);
        this task starts with every connection, so a new link sends everything unconfirmed
        again, and so does an oldest row left unconfirmed for ``ack_timeout_s`` (the broker
        restarted and ingest had not yet subscribed, or a confirmation was lost)."""
        sent_upto = 0  # everything up to here went out on this connection
        self._sent.clear()
        timeout = self.s.ack_timeout_s
        while True:
            self._wake.clear()
            now = time.monotonic()
            oldest = self.spool.oldest()
            if oldest is not None and oldest <= sent_upto:
                waited = now - self._sent.get(oldest, now - timeout)
                if waited >= timeout:
                    log.info(
                        "unconfirmed for %.0f s: sending the spool again from %s", waited, oldest
                    )
                    sent_upto = 0
                    self._sent.clear()
                    self.resends += 1
            entries = self.spool.peek_after(sent_upto, DRAIN_WINDOW)
            if not entries:
                left = timeout
                if oldest is not None and oldest <= sent_upto:
                    left = max(0.05, self._sent.get(oldest, now) + timeout - now)
                with contextlib.suppress(TimeoutError):
                    await within(self._wake.wait(), left)
                continue
            started = time.monotonic()
            await asyncio.gather(*(self._publish(client, e) for e in entries))
            if len(entries) == 1:
                self.rtt_ms = round((time.monotonic() - started) * 1000, 2)
            for e in entries:
                self._sent.setdefault(e.seq, started)
            sent_upto = entries[-1].seq

    def _on_ack(self, payload: bytes) -> None:
        """The cloud stored these messages: only now do they leave the spool."""
        try:
            stored = ack.parse(payload)
        except ValueError as err:
            log.warning("storage confirmation ignored: %s", err)
            return
        self.confirmed += self.spool.confirm(stored.ranges)
        for lo, hi in stored.ranges:
            if hi - lo < 4 * DRAIN_WINDOW:
                for seq in range(lo, hi + 1):
                    self._sent.pop(seq, None)
            else:
                for seq in [s for s in self._sent if lo <= s <= hi]:
                    del self._sent[seq]

    async def _publish(self, client: aiomqtt.Client, entry: Entry) -> None:
        topic_name, payload = wire.encode(self.tid, entry)
        props = None
        if self.link is not None and entry.kind is Kind.EVENT:
            # Business events carry a MAC over the exact bytes: tampering in transit shows.
            props = Properties(PacketTypes.PUBLISH)
            props.UserProperty = [("mac", self.link.event_tag(payload))]
        await client.publish(topic_name, payload, qos=1, properties=props, timeout=15)

    async def _execute(self, name: str, payload: bytes) -> commands.Reply:
        if self.link is None:
            return await commands.dispatch(self.handlers, name, payload, self.serial)
        try:
            command = self.link.verify(payload, self.tid, name, datetime.now(UTC))
        except CommandRefused as err:
            log.warning("command %s refused: %s", name, err.reason)
            return commands.Reply(False, {"error": "refused", "reason": err.reason})
        args = dict(command.args)
        if name == "collect_logs":  # the verified id names the log upload
            args[mdm_handler.COMMAND_ID] = command.id
        reply = await commands.run(self.handlers, name, args, self.serial)
        return commands.Reply(reply.ok, {**reply.result, "command_id": command.id})

    async def _renew_loop(self) -> None:
        assert self.link is not None
        while True:
            await asyncio.sleep(RENEW_CHECK_S)
            try:
                if await self.link.renew_if_due(datetime.now(UTC)):
                    log.info("certificate renewed; used from the next reconnect")
            except (CuntongError, httpx.HTTPError, OSError) as err:
                log.warning("certificate renewal failed (%s); will retry", err)

    async def _commands(self, client: aiomqtt.Client) -> None:
        # Each command runs in its own task: a liveness check takes seconds and must not
        # hold up a ping or a screen lock behind it.
        running: set[asyncio.Task[None]] = set()
        try:
            async for message in client.messages:
                if str(message.topic) == self._ack_topic:
                    self._on_ack(message.payload if isinstance(message.payload, bytes) else b"")
                    continue
                if str(message.topic) == self._desk_topic:
                    # In order and at once: the call's state machine is quick, media is not
                    # awaited here.
                    payload = message.payload if isinstance(message.payload, bytes) else b""
                    await self.teller.on_desk(payload)
                    continue
                task = asyncio.create_task(self._answer(client, message))
                running.add(task)
                task.add_done_callback(running.discard)
        finally:
            for task in running:
                task.cancel()

    async def _answer(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        name = str(message.topic).rsplit("/", 1)[-1]
        payload = message.payload if isinstance(message.payload, bytes) else b""
        reply = await self._execute(name, payload)
        req = message.properties
        response_topic = getattr(req, "ResponseTopic", None) if req else None
        if reply.ok and reply.result.get(RESTART):
            # A new agent version is on trial: it answers this command itself once it has
            # passed (or this version does, after a rollback). Save where the answer goes.
            correlation = getattr(req, "CorrelationData", None) if req else None
            component = str(reply.result.get("component", agent_slots.COMPONENT))
            agent_slots.save_pending(
                self.s.state_dir,
                agent_slots.Pending(
                    str(reply.result.get("version", "")),
                    str(response_topic or ""),
                    base64.b64encode(correlation or b"").decode(),
                    reply.result.get("command_id"),
                ),
                component,
            )
            self._power(f"{component} update")
            return
        if not response_topic:
            log.warning("command %s without response topic; reply dropped", name)
            return
        props = Properties(PacketTypes.PUBLISH)
        correlation = getattr(req, "CorrelationData", None)
        if correlation is not None:
            props.CorrelationData = correlation
        with contextlib.suppress(aiomqtt.MqttError):  # link gone: the cloud times it out
            await client.publish(response_topic, reply.to_bytes(), qos=1, properties=props)

    async def _cmd_liveness(self, args: dict[str, Any]) -> dict[str, Any]:
        business_type = args.get("business_type")
        if not isinstance(business_type, str) or not business_type:
            raise ValueError("business_type (a string) is required")
        try:
            result = await self.liveness.check(business_type)
        finally:
            await self.teller.show_prompt(None)
        # Only the verdict travels, as a business event the session can cite (never frames).
        self.emit_event("liveness_result", result.to_dict())
        await self.teller.liveness(result.to_dict())  # stored with the call, if one is on
        return result.to_dict()

    # --- self-update: the trial of a new agent version ----------------------------------

    async def _agent_trial(self) -> None:
        await self._agent_trial_once()
        await self._stopping.wait()  # the run's tasks end only with the agent

    async def _agent_trial_once(self) -> None:
        await self._trial_once(agent_slots.COMPONENT, __version__, self._trial_checks)

    async def _adapter_trials(self) -> None:
        """The trial of every adapter package (see ``_trial_once``), side by side."""
        state = self.s.state_dir
        await asyncio.gather(
            *(
                self._trial_once(
                    comp,
                    self.adapters.versions.get(comp),
                    functools.partial(self._trial_checks, comp.removeprefix(adapter_slots.PREFIX)),
                )
                for comp in adapter_slots.components(state)
            )
        )
        await self._stopping.wait()  # the run's tasks end only with the agent

    async def _trial_once(
        self,
        component: str,
        running: str | None,
        checks: Callable[[], Awaitable[str | None]],
    ) -> None:
        """A component that restarts to update (the agent, an adapter), running ``running``
        (None: the built-in adapter). On trial: connect, report the version, pass the
        self-test before the deadline, then commit and answer the update; otherwise go back
        to the previous slot and restart. Not on trial but with an update unanswered: that
        update was rolled back (or, if it runs, committed before its answer went); say so."""
        state = self.s.state_dir
        slots = read_slots(state, component)
        pending = agent_slots.read_pending(state, component)
        if slots.trial and running is not None and slots.versions.get(slots.active) == running:
            left = (slots.trial_until or self._clock()) - self._clock()
            try:
                why = await within(checks(), max(left, 0.0))
            except TimeoutError:
                why = "not connected and self-tested before the trial deadline"
            if why is None:
                save_slots(state, component, ota_slots.commit(read_slots(state, component)))
                log.info("%s %s committed in slot %s", component, running, slots.active)
                self.emit_event(
                    "ota_progress",
                    {
                        "component": component,
                        "version": running,
                        "state": "healthy",
                        "slot": slots.active,
                    },
                )
                done = {"component": component, "version": running, "slot": slots.active}
                await self._answer_update(pending, True, done, component)
                return
            log.error("%s %s failed its trial (%s): rolling back", component, running, why)
            save_slots(state, component, ota_slots.rollback(read_slots(state, component)))
            self.emit_event(
                "ota_progress",
                {"component": component, "version": running, "state": "rolled_back", "detail": why},
            )
            self._power(f"{component} rollback")
            return
        if pending is None:
            return
        if pending.version == running and not slots.trial:
            done = {"component": component, "version": running, "slot": slots.active}
            await self._answer_update(pending, True, done, component)
            return
        now_on = running or "the built-in driver"
        self.emit_event(
            "ota_progress",
            {
                "component": component,
                "version": pending.version,
                "state": "rolled_back",
                "slot": slots.active,
                "detail": "did not pass its trial",
            },
        )
        await self._answer_update(
            pending,
            False,
            {
                "error": f"{component} {pending.version} did not pass its trial; back on {now_on}",
                "rolled_back_locally": True,
            },
            component,
        )

    async def _trial_checks(self, kind: str | None = None) -> str | None:
        """None when the new version is connected, has reported itself and passes its
        self-test (every device's, or those of one ``kind`` for an adapter); else what
        failed."""
        await self.connected.wait()  # the status with the versions went out first
        # A device can answer its first exchange badly right after the restart (the old
        # process may have left a reply half-read on the serial line): a few tries, then
        # the verdict. A version that breaks a peripheral still fails every try.
        failed: list[dict[str, Any]] = []
        for attempt in range(TRIAL_SELF_TESTS):
            if attempt:
                await asyncio.sleep(1.0)
            if kind is None:
                results = await self.peripherals.self_test()
            else:
                results = await self.peripherals.self_test_kind(kind)
                if not results:
                    return f"no {kind} device runs with this adapter"
            failed = [r for r in results if not r["passed"]]
            if not failed:
                return None
        return "self-test failed: " + ", ".join(
            f"{r.get('name', '?')} ({r.get('detail', '')})" for r in failed
        )

    async def _answer_update(
        self,
        pending: agent_slots.Pending | None,
        ok: bool,
        result: dict[str, Any],
        component: str = agent_slots.COMPONENT,
    ) -> None:
        if pending is None:
            return
        if pending.command_id is not None:
            result = {**result, "command_id": pending.command_id}
        while True:
            await self.connected.wait()
            client = self._mqtt
            if client is None or not pending.response_topic:
                break
            props = Properties(PacketTypes.PUBLISH)
            props.CorrelationData = pending.correlation_bytes
            try:
                await client.publish(
                    pending.response_topic,
                    commands.Reply(ok, result).to_bytes(),
                    qos=1,
                    properties=props,
                    timeout=10,
                )
                break
            except aiomqtt.MqttError:
                await asyncio.sleep(1)  # the link dropped: answer on the next connection
        agent_slots.clear_pending(self.s.state_dir, component)

    def _adapter_check(self, kind: str) -> Callable[[Path], Awaitable[None]]:
        """An adapter package is checked before any slot changes: a package for ``kind``,
        and a ``kind`` of device this terminal has."""

        async def check(payload: Path) -> None:
            await asyncio.to_thread(adapter_slots.check, payload, kind)
            if kind not in self.peripherals.kinds():
                raise PackageRefused("not_configured", f"this terminal has no {kind} device")

        return check

    async def _cmd_selftest(self, args: dict[str, Any]) -> dict[str, Any]:
        results = await self.peripherals.self_test()
        return {"passed": all(r["passed"] for r in results), "results": results}

    async def _cmd_ping(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"pong": True, "ts": self._ms(), "spool_depth": self.spool.depth(), "echo": args}


def _dev_brokers(settings: AgentSettings) -> tuple[BrokerAddress, ...]:
    return tuple(
        BrokerAddress(host=e.host, port=e.port, server_name=e.host)
        for e in settings.broker_endpoints()
    )


def _hp(broker: BrokerAddress) -> tuple[str, int]:
    return broker.host, broker.port


async def _check_agent_wheel(payload: Path) -> None:
    await asyncio.to_thread(agent_slots.check_wheel, payload)


@contextlib.asynccontextmanager
async def _opened(adapter: A) -> AsyncIterator[A]:
    """The agent's readers are opened once at start; a step borrows one as it is."""
    yield adapter


async def _one_frame(camera: Any) -> np.ndarray:
    """One live RGB frame from the terminal camera (for the face match)."""
    stream = camera.frames()
    try:
        async for frame in stream:
            return np.ascontiguousarray(frame.pixels)
    finally:
        await stream.aclose()
    raise OSError("the camera gave no frame")
