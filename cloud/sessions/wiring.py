"""How the cloud app runs the teller desk: ``start(settings, security, oversight, stack)``.

With Janus nodes configured (``janus_url`` for node janus-1 and/or ``janus_nodes``:
``CloudSettings.media_nodes``) it builds, inside the app's lifespan:

- ``JanusPool`` over every node (their control sessions live in ``stack``), rooms placed on
  the least loaded healthy node that is not draining (/healthz shows its nodes);
- ``DeskLink`` (MQTT, terminals) and the ``Outbox`` whose terminal sink it is;
- ``Archiver``: after each call, ``.mjr`` files -> one checked ``.mkv`` in ``archive_dir``,
  path and SHA-256 stored on the session (``store.set_recording``);
- ``Desk`` on a ``Board`` routed by the oversight catalogue's business table, persisting
  every transition (``store.save``), with every enabled teller profile on the board;
- the board a previous desk left (a new leader taking over, or a restart) adopted from the
  database: waiting customers at their places (told their position again once the link is
  up), live calls with their rooms and grants, wrap-ups, tellers' states with their
  no-answer holds, re-offer cooldowns, learned handle times and the grace periods running
  (``recovery``, ``Watch.adopt``);
  what cannot be adopted is ended as before: rooms closed and recordings archived,
  customers and tellers told ``desk restarted``;
- ``Watch`` for the grace periods of terminals and tellers that vanish mid-call;

and returns them as one ``DeskServices`` (the routes get each as a dependency, see
``cloud.api.deps``) with the background tasks (desk clock, archiver, Janus health, link,
watch). Without Janus the desk stays off (``None``: teller routes answer 503) but KPIs
still read stored sessions (``sources.session_contacts``, which the app always serves).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cloud.evidence import service as evidence_service
from cloud.media.archive import Archiver
from cloud.media.errors import RecordingError
from cloud.media.gate import gate_path
from cloud.media.nodes import Node
from cloud.media.pool import JanusPool, NodeAccess
from cloud.media.recfetch import RecordingSource
from cloud.media.recording import RecordingResult
from cloud.media.recserve import RECORDINGS_SUFFIX
from cloud.ops.feeds import LiveSource
from cloud.oversight import Oversight
from cloud.security import Security
from cloud.sessions import profiles, recovery, sources, store
from cloud.sessions.bridge import DeskLink, IdReadCheck, StepSink
from cloud.sessions.desk import Desk
from cloud.sessions.gate import JanusGate
from cloud.sessions.grants import TurnConfig
from cloud.sessions.outbox import Outbox
from cloud.sessions.routing import ON_DUTY, Board, Policy
from cloud.sessions.skills import business_table
from cloud.sessions.state import State
from cloud.sessions.watch import Watch
from cloud.workflow import device, steps
from common import suite as suite_lib
from common.errors import ConfigError
from common.periodic import run_every
from common.settings import CloudSettings, JanusNode
from common.wire.call import Request, StepResult

log = logging.getLogger("cuntong.desk")

JANUS_HEALTH_S = 5.0


@dataclass(frozen=True, slots=True)
class DeskServices:
    """The running teller desk, built once in the app's lifespan."""

    desk: Desk
    outbox: Outbox
    link: DeskLink
    watch: Watch
    pool: JanusPool
    #: The big screen's queue and teller counts, read from the desk's board.
    live: LiveSource
    #: Participants' Janus signalling through the cloud (``/media/janus/<node>``).
    gate: JanusGate


def _now() -> datetime:
    return datetime.now(UTC)


def _on_archived(ov: Oversight) -> Callable[[str, RecordingResult], Awaitable[None]]:
    async def done(room: str, result: RecordingResult) -> None:
        await store.set_recording(room, str(result.path), result.sha256)
        log.info("session %s archived: %s (%d bytes)", room, result.path, result.size)
        # Sealed before the recording was ready: its SHA-256 goes beside the package.
        if await evidence_service.add_recording(
            ov, room, str(result.path), result.sha256, ov.clock()
        ):
            log.info("session %s: recording added to its sealed evidence", room)

    return done


async def _on_archive_error(room: str, err: RecordingError) -> None:
    log.error("session %s: recording not archived: %s", room, err)


async def _janus_health(pool: JanusPool) -> None:
    async def check() -> None:
        was = {n.name: n.healthy for n in pool.registry.nodes.values()}
        for name, ok in (await pool.check_health()).items():
            if not ok:
                log.warning("Janus node %s is down", name)
            elif not was.get(name, True):
                log.info("Janus node %s is back", name)

    await run_every(check, JANUS_HEALTH_S, name="Janus health check", first_wait=True, logger=log)


#: How often the desk deletes held before-queue reads whose time is up.
HELD_ID_READ_SWEEP_S = 60.0


async def _sweep_held_reads(ov: Oversight) -> None:
    """Expired held ID reads are deleted even when no new read comes to do it."""

    async def sweep() -> None:
        if gone := await store.drop_expired_id_reads(ov.clock()):
            log.info("deleted %d expired ID reads held before queueing", gone)

    await run_every(sweep, HELD_ID_READ_SWEEP_S, name="held ID read sweep", logger=log)


async def _announce_when_up(desk: Desk, link: DeskLink) -> None:
    """Tell every waiting customer their place once the link is up (after a takeover,
    the places the previous desk announced; the clock's next round may be before)."""
    await link.ready.wait()
    await desk.announce_positions()


def step_sink(ov: Oversight) -> StepSink:
    """What the desk link does with a device step's result: verify and record it."""

    async def accept(terminal_id: str, session_id: str, result: StepResult) -> dict[str, Any]:
        _, verified, passed = await steps.accept(
            ov, ov.device_issuers, terminal_id, session_id, result, ov.clock(), ov.cards
        )
        # a result the terminal calls passed may still fail the cloud's reading (a
        # face-match score under the business's threshold)
        return _told(verified, passed)

    return accept


def _told(verified: Any, passed: bool) -> dict[str, Any]:
    return {
        "outcome": "failed" if verified.outcome == "passed" and not passed else verified.outcome,
        "passed": passed,
        "reason": verified.reason,
        "masked": dict(verified.masked),
    }


def id_read_check(ov: Oversight) -> IdReadCheck:
    """How the desk link checks an ID read made before queueing (先刷身份证)."""

    def check(terminal_id: str, request: Request, used: set[str]) -> dict[str, Any]:
        assert request.id_read is not None
        verified = device.check_before_queue(
            request.id_read,
            request_id=request.request_id,
            terminal_id=terminal_id,
            used=used,
            issuers=ov.device_issuers,
            now=ov.clock(),
        )
        return dict(verified.masked)

    return check


#: How long a verified before-queue read waits for the teller after the desk accepted its
#: request; a customer who waited longer is asked to read the card again in the call.
HELD_ID_READ_TTL = dt.timedelta(minutes=10)


class HeldIdReads:
    """Before-queue ID reads held in the database until the teller reaches
    ``id_card_read`` (``bridge.IdReads``): sealed under the session's evidence data key,
    taken once across replicas (``store.take_id_read``), expired after
    ``HELD_ID_READ_TTL`` and deleted."""

    def __init__(self, ov: Oversight) -> None:
        self.ov = ov

    def _key(self, session_id: str) -> bytes:
        return self.ov.evidence_keys.data_key(self.ov.suite, session_id)

    @staticmethod
    def _aad(session_id: str, request_id: str) -> bytes:
        return f"held-id-read|{session_id}|{request_id}".encode()

    async def hold(
        self,
        terminal_id: str,
        session_id: str,
        request_id: str,
        result: StepResult,
        masked: dict[str, Any],
    ) -> bool:
        sealed = suite_lib.encrypt(
            self.ov.suite, self._key(session_id), result.to_bytes(),
            aad=self._aad(session_id, request_id),
        )  # fmt: skip
        now = self.ov.clock()
        read = store.HeldRead(
            request_id, session_id, terminal_id, base64.b64encode(sealed).decode(), masked
        )
        return await store.hold_id_read(read, now, now + HELD_ID_READ_TTL)

    async def masked(self, session_id: str) -> dict[str, Any] | None:
        held = await store.held_id_read(session_id, self.ov.clock())
        return None if held is None else dict(held.masked)

    async def take(self, terminal_id: str, session_id: str) -> dict[str, Any] | None:
        held = await store.take_id_read(session_id, self.ov.clock())
        if held is None or held.terminal_id != terminal_id:
            return None
        plain = suite_lib.decrypt(
            self.ov.suite, self._key(session_id), base64.b64decode(held.sealed),
            aad=self._aad(session_id, held.request_id),
        )  # fmt: skip
        result = StepResult.parse(plain)
        _, verified, passed = await steps.accept_before_queue(
            self.ov, self.ov.device_issuers, terminal_id, session_id, held.request_id,
            result, self.ov.clock(),
        )  # fmt: skip
        return _told(verified, passed)


def node_access(node: JanusNode, *, gated: bool = False) -> NodeAccess:
    """How the pool reaches one configured node. ``gated``: grants carry the cloud's
    signalling gate (``/media/janus/<node>``, relative to the cloud address each
    participant uses) unless the node names its own ``public_url``."""
    public_url = node.public_url or (gate_path(node.name) if gated else "")
    return NodeAccess(
        node.name,
        node.url,
        node.admin_url,
        node.admin_secret,
        node.room_key,
        str(node.rec_dir),
        node.capacity,
        public_url=public_url,
        draining=node.draining,
        read_dir=str(node.read_dir or ""),
        recordings_url=node.recordings_url,
    )


def recording_sources(
    settings: CloudSettings, security: Security | None, pool: JanusPool
) -> Callable[[Node], RecordingSource | None]:
    """Per node, where the archiver fetches its recordings: the node's recordings server
    with this instance's recordings certificate (``svc.<instance>-recordings``, renewed
    when due), or None to read the folder locally (single host)."""

    fetched = [n.name for n in settings.media_nodes() if n.recordings_url]
    if fetched and security is None:  # at start, not in the desk's after-call hook
        raise ConfigError(
            f"node(s) {', '.join(fetched)}: recordings_url needs the secured mode (state_dir)"
            " for the archiver's client certificate"
        )

    def source_of(node: Node) -> RecordingSource | None:
        url = pool.recordings_url(node)
        if not url or security is None:
            return None
        instance = settings.service_instance + RECORDINGS_SUFFIX
        return RecordingSource(url, lambda: security.mqtt_tls(instance, _now()))

    return source_of


async def start(
    settings: CloudSettings,
    security: Security | None,
    ov: Oversight,
    stack: contextlib.AsyncExitStack,
) -> tuple[DeskServices | None, list[asyncio.Task[None]]]:
    nodes = settings.media_nodes()
    if not nodes:
        return None, []
    for node in nodes:  # a node on this host writes there; a remote one is mounted there
        (node.read_dir or node.rec_dir).mkdir(parents=True, exist_ok=True)
    # Secured (cuntong up, deploy render): participants signal through the cloud's gate,
    # which audits a join outside its grant's room; terminals resolve the path against
    # their enrolment URL. Development terminals know no cloud address: Janus's own URL.
    gated = security is not None
    access = [node_access(n, gated=gated) for n in nodes]
    pool = await stack.enter_async_context(JanusPool(access))
    for down in (n for n in pool.registry.nodes.values() if not n.healthy):
        log.warning("Janus node %s is down at start: no rooms there until it answers", down.name)
    link = DeskLink(settings, security)
    outbox = Outbox(terminal_sink=link.send)
    # Beside the evidence packages unless set: the same state folder Oversight chose.
    archive = settings.archive_dir or ov.evidence_dir.parent / "recordings"
    archiver = Archiver(
        pool.rec_dir, archive, _on_archived(ov), _on_archive_error,
        source_of=recording_sources(settings, security, pool),
    )  # fmt: skip
    left, tellers = await store.open_board()
    adopted = await recovery.adopt(left, pool)
    spare = frozenset(a.session.id for a in adopted)
    stale = await store.end_unfinished(_now(), spare=spare)
    if stale:
        archiving = await recovery.close_rooms(stale, pool, archiver.after_call)
        log.warning(
            "ended %d sessions left open by a previous desk (%d recordings to archive)",
            len(stale),
            archiving,
        )
    table = business_table(ov.catalogue)
    board = Board(Policy(businesses=table, reoffer_cooldown=settings.desk_reoffer_cooldown_s))
    now = _now()
    for teller_id, skills in (await profiles.on_duty_skills(table)).items():
        board.add_teller(teller_id, skills, now.timestamp())
    turn = None
    if settings.turn_secret and settings.turn_urls:
        turn = TurnConfig(settings.turn_secret, tuple(settings.turn_urls))
    desk = Desk(
        board,
        pool,
        outbox.notify,
        _now,
        persist=store.save,
        after_call=archiver.after_call,
        turn=turn,
        keep=store.Keeper(),
    )
    await desk.adopt(adopted, tellers, await store.handle_times())
    watch = Watch(
        desk, outbox, _now, settings.terminal_grace_s, settings.teller_grace_s,
        keep=store.keep_absences,
    )  # fmt: skip
    watch.adopt(await store.absences())  # grace periods running: their deadlines stand
    for teller_id, teller in board.tellers.items():  # on duty as the previous desk left them:
        if teller.state in ON_DUTY:  # missing until their page reconnects (grace periods)
            watch.teller_left(teller_id)  # (an earlier mark, adopted above, stands)
    if adopted:
        log.warning(
            "adopted %d sessions a previous desk left open (%d waiting, %d in a call)",
            len(adopted),
            len(desk.board.requests),
            sum(1 for a in adopted if a.session.state is State.CONNECTED),
        )
    link.desk, link.watch = desk, watch
    link.on_step = step_sink(ov)
    link.check_id_read, link.id_reads = id_read_check(ov), HeldIdReads(ov)
    live = sources.board_live(lambda: board, _now)
    names = ", ".join(n.name for n in nodes)
    log.info("teller desk on Janus %s with %d tellers", names, len(board.tellers))
    gate = JanusGate(pool, desk, _now)
    stack.push_async_callback(gate.aclose)
    return DeskServices(desk, outbox, link, watch, pool, live, gate), [
        asyncio.create_task(desk.run(), name="desk"),
        asyncio.create_task(archiver.run(), name="desk-archiver"),
        asyncio.create_task(_janus_health(pool), name="desk-janus-health"),
        asyncio.create_task(link.run(), name="desk-link"),
        asyncio.create_task(watch.run(), name="desk-watch"),
        asyncio.create_task(recovery.tell(stale, outbox, link.ready), name="desk-restart-notices"),
        asyncio.create_task(_announce_when_up(desk, link), name="desk-takeover-positions"),
        asyncio.create_task(_sweep_held_reads(ov), name="desk-held-id-read-sweep"),
    ]
