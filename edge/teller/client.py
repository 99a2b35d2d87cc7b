"""The terminal's call client: the pure ``call`` state machine driven over the agent's link.

The agent hands in desk messages (``on_desk``) and link changes (``link_changed``); the
customer screen (or the simulated customer) hands in the customer's choices (``ask``,
``end``, ``rate``); the liveness command hands in its verdict. Each becomes a ``call`` event;
the resulting actions are carried out here: session messages published through the
agent's MQTT link (never spooled: a call only makes sense while online), and the room
joined, rejoined or left through a ``RoomPeer`` built by ``peer_factory`` (aiortc is only
imported when the first call connects).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Protocol

from common.aio import cancel_and_wait
from common.wire import call as wire
from common.wire.call import Grant
from edge.steps.runner import StepRunner
from edge.teller import call
from edge.teller.call import Call, Phase
from edge.teller.paperwork import Paperwork

log = logging.getLogger("cuntong.teller")

#: How long a card read before queueing is kept for the request (the desk refuses one signed
#: more than ten minutes before it arrives: ``cloud.workflow.device.BEFORE_QUEUE_MAX_AGE``).
ID_READ_KEEP_S = 8 * 60

Publish = Callable[[bytes], Awaitable[None]]


class Peer(Protocol):
    """What the client needs of the media adapter (``peer.RoomPeer``)."""

    grant: Grant
    publications: int

    async def start(self) -> None: ...
    async def republish(self) -> None: ...
    async def follow(self, peer_feed: str) -> None: ...
    async def close(self) -> None: ...
    def send(self, text: str) -> bool: ...


PeerFactory = Callable[[Grant, Callable[[str], None], Callable[[str], None]], Peer]


class TellerClient:
    def __init__(
        self,
        publish: Publish,
        peer_factory: PeerFactory,
        paperwork_factory: Callable[[Callable[[str], bool]], Paperwork],
        clock: Callable[[], datetime],
    ) -> None:
        self._publish = publish
        self._peer_factory = peer_factory
        self.clock = clock
        self.call = Call(since=clock())
        self.peer: Peer | None = None
        self.paperwork = paperwork_factory(self._send_text)
        self.ignored = 0
        self.bad_messages = 0
        self._lock = asyncio.Lock()
        #: Joining or rejoining the room (a rejoin supersedes a join still in progress).
        self._media_task: asyncio.Task[None] | None = None
        #: Following a transferred call's next teller (never cancels a join).
        self._follow_task: asyncio.Task[None] | None = None
        self.changed = asyncio.Event()  # set on every state change (the screen waits on it)
        #: A liveness challenge step being shown to the customer, if one is running.
        self.prompt: str | None = None
        #: Performs the desk's device-step requests (set by the agent when it has an
        #: enrolled key to sign with; without one a request is logged and left unanswered,
        #: and the teller's supervisor overrides the step).
        self.steps: StepRunner | None = None
        #: The device step being performed now (the customer screen shows it).
        self.step: str | None = None
        self._step_task: asyncio.Task[None] | None = None
        #: 先刷身份证: the ID read the customer made before queueing (signed for the request
        #: id it carries as its nonce) and when, sent with the next request; and what the
        #: screen shows of it (masked fields, the customer's words on a refusal).
        self.id_read: wire.StepResult | None = None
        self._id_read_at = 0.0
        self.id_shown: dict[str, Any] | None = None
        #: Called when a call is over (the ID photo kept for face match is dropped).
        self.on_call_over: list[Callable[[], None]] = []

    # --- inputs ------------------------------------------------------------------------

    async def on_desk(self, payload: bytes) -> None:
        try:
            msg = wire.parse_desk(payload)
        except wire.CallError as err:
            self.bad_messages += 1
            log.warning("desk message refused: %s", err)
            return
        await self.handle(call.DeskSays(msg))

    async def ask(
        self,
        business: str,
        elderly: bool = False,
        customer: dict[str, str] | None = None,
        language: str = "cmn",
    ) -> None:
        read = self.fresh_id_read()
        self.forget_id_read()
        request_id = read.nonce if read is not None else wire.new_request_id()
        await self.handle(call.Ask(business, request_id, language, elderly, customer, read))

    def fresh_id_read(self) -> wire.StepResult | None:
        """The before-queue read, while the desk would still take it as fresh."""
        if self.id_read is None or time.monotonic() - self._id_read_at > ID_READ_KEEP_S:
            return None
        return self.id_read

    def forget_id_read(self) -> None:
        self.id_read, self.id_shown = None, None
        self.changed.set()

    def call_over(self) -> None:
        """The customer is gone (call over, or they left the menu): drop what their card
        left on the terminal (the read, the photo kept for face match)."""
        self.forget_id_read()
        for over in self.on_call_over:
            over()

    async def read_id_first(self) -> dict[str, Any]:
        """先刷身份证: read the ID card now, before asking for a teller, with the same
        ``id_card_read`` handler the desk's requests use, signed for a fresh request id
        (the nonce; ``wire.before_queue_session`` names it). Returns what the screen shows.
        ValueError when the terminal is in a call, or cannot sign (development mode)."""
        if self.call.phase not in (Phase.IDLE, Phase.RATING):
            raise ValueError("the ID card is read first only before asking for a teller")
        runner = self.steps
        if runner is None or "id_card_read" not in runner.handlers:
            raise ValueError("this terminal cannot read and sign an ID card")
        if self.step is not None:
            raise ValueError(f"the terminal is busy with {self.step}")
        request_id = wire.new_request_id()
        request = wire.StepRequest(
            wire.before_queue_session(request_id), "id_card_read", request_id,
            {"before_queue": True},
        )  # fmt: skip
        self.forget_id_read()
        self.step = "id_card_read"
        self.changed.set()
        try:
            result = await runner.run(request)
        finally:
            self.step = None
            self.changed.set()
        masked = result.masked
        shown = {
            "outcome": result.outcome,
            "name": masked.get("name"),
            "id_number": masked.get("id_number"),
            "elderly": bool(masked.get("elderly")),
            # expired, wrong check digit, not yet valid (the screen words it); none: the
            # reader could not read a card
            "refused": masked.get("refused"),
        }
        if result.outcome == "passed":
            self.id_read, self._id_read_at = result, time.monotonic()
        self.id_shown = shown
        self.changed.set()
        return shown

    async def ring_back(self) -> None:
        """The customer chose to be called back; ValueError when it is not on offer."""
        if not call.ring_back_offered(self.call):
            raise ValueError("ring-back is offered only while a long queue is waited")
        await self.handle(call.RingBack())

    async def end(self, cause: str = "customer ended") -> None:
        await self.handle(call.CustomerEnds(cause))

    async def rate(self, score: int | None) -> None:
        await self.handle(call.Rated(score))

    async def liveness(self, verdict: dict[str, Any]) -> None:
        await self.handle(call.LivenessDone(verdict))

    async def show_prompt(self, text: str | None) -> None:
        """The liveness check's prompt for the screen (None: the check is over)."""
        self.prompt = text or None
        self.changed.set()

    def link_changed(self) -> None:
        """The agent's network dropped or changed: republish if a call is on."""
        if self.call.phase in call.IN_ROOM:
            asyncio.get_running_loop().create_task(self.handle(call.LinkLost()))

    # --- the machine -----------------------------------------------------------------

    async def handle(self, event: call.Event) -> Call:
        async with self._lock:  # events apply in order; actions see the state they made
            before = self.call
            try:
                outcome = call.step(self.call, event, self.clock())
            except wire.CallError as err:
                self.bad_messages += 1
                log.warning("desk message refused: %s", err)
                return self.call
            if outcome.ignored is not None:
                self.ignored += 1
                log.info("call event ignored: %s", outcome.ignored.reason)
            self.call = outcome.call
            for action in outcome.actions:
                await self._do(action)
            if self.call != before:
                self.changed.set()
                resting = (Phase.IDLE, Phase.RATING)
                if before.phase not in resting and self.call.phase in resting:
                    self.call_over()
            return self.call

    async def _do(self, action: call.Action) -> None:
        if isinstance(action, call.Send):
            try:
                await self._publish(action.msg.to_bytes())
            except Exception as err:  # the link's own errors; the screen says offline
                # (a ring-back not sent: the request stays queued and the screen still
                # rings at connect; only the teller's offer lacks the warning)
                log.warning("%s not sent: %s", action.msg.type, err)
                if isinstance(action.msg, wire.Request):
                    self.call = Call(since=self.clock(), notice="offline")
        elif isinstance(action, call.Join):
            await self._join(action.grant)
        elif isinstance(action, call.Rejoin):
            self._in_background(self._rejoin())
        elif isinstance(action, call.Leave):
            await self._leave()
        elif isinstance(action, call.Notify):
            await self.show_prompt(action.text or None)
        elif isinstance(action, call.RunStep):
            if self._step_task is not None and not self._step_task.done():
                log.warning("step %s asked while %s runs: ignored", action.request.step, self.step)
                return
            self._step_task = asyncio.get_running_loop().create_task(self._run_step(action.request))

    async def _run_step(self, request: wire.StepRequest) -> None:
        runner = self.steps
        if runner is None:
            log.warning("step %s asked, but this terminal cannot sign results", request.step)
            return
        self.step = request.step
        self.prompt = None  # the last step's words (a wrong PIN's tries left) are done
        self.changed.set()
        try:
            result = await runner.run(request)
            await self._publish(result.to_bytes())
        except Exception as err:  # the link's own errors: the teller asks again
            log.warning("step %s result not sent: %s", request.step, err)
        finally:
            self.step = None
            self.changed.set()

    async def _join(self, grant: Grant) -> None:
        if self.peer is not None and self.peer.grant.room == grant.room:
            if self.peer.grant.peer_feed != grant.peer_feed:
                self._follow_task = asyncio.get_running_loop().create_task(
                    self._follow(self.peer, grant.peer_feed)
                )
            return
        await self._leave()
        self.paperwork.reset()
        self.peer = self._peer_factory(grant, self.paperwork.on_text, self._media_event)
        self._in_background(self._start(self.peer))

    async def _start(self, peer: Peer) -> None:
        try:
            await peer.start()
        except Exception as err:  # Janus unreachable or refusing: same path as a lost link
            log.warning("joining the room failed: %s", err)
            self._media_event("lost")  # as its own task: this one is replaced by the rejoin

    async def _rejoin(self) -> None:
        peer = self.peer
        if peer is None:
            return
        try:
            await peer.republish()
        except Exception as err:  # the desk fails the session after its grace period
            log.warning("republishing failed: %s", err)

    async def _follow(self, peer: Peer, peer_feed: str) -> None:
        try:
            await peer.follow(peer_feed)
        except Exception as err:  # the old teller's feed is gone either way; log and wait
            log.warning("following the next teller failed: %s", err)

    def _media_event(self, what: str) -> None:
        event: call.Event = call.MediaUp() if what == "up" else call.LinkLost()
        asyncio.get_running_loop().create_task(self.handle(event))

    async def _leave(self) -> None:
        peer, self.peer = self.peer, None
        try:
            for task in (self._media_task, self._follow_task):
                await cancel_and_wait(task, Exception)
        finally:  # stopped meanwhile: the peer is still closed, then the stop goes on
            self._media_task = self._follow_task = None
            if peer is not None:
                await peer.close()

    def _in_background(self, work: Awaitable[None]) -> None:
        async def run() -> None:
            await work

        if self._media_task is not None and not self._media_task.done():
            self._media_task.cancel()
        self._media_task = asyncio.get_running_loop().create_task(run())

    def _send_text(self, text: str) -> bool:
        return self.peer.send(text) if self.peer is not None else False

    async def close(self) -> None:
        if self.call.phase in call.IN_ROOM or self.call.phase is Phase.WAITING:
            await self.end("terminal shutting down")
        await self._leave()
