"""The terminal in a call's Janus room: aiortc publisher + subscriber (the media adapter).

With the desk's grant the terminal opens a Janus session (token auth), publishes camera,
microphone and a data channel as ``grant.feed`` (VideoRoom ``joinandconfigure``), and
subscribes to ``peer_feed`` as soon as the teller publishes (at once when the teller is
already in the room, else on the room's ``publishers`` event). The teller's video is kept as
its latest frame for the customer screen; the teller's audio goes to the speaker or is
drained. ``follow(peer_feed)`` switches the subscription on a transfer.

``republish()`` rebuilds everything on a fresh Janus session with the same grant: after the
terminal's network dropped or changed, the old session and its handles are torn down
(which removes the stale ``customer`` publisher from the room) and the new publication takes
its place; a 436 "user ID exists" while Janus has not yet noticed the old one is retried.

Reports go through ``on_event``: ``"up"`` when the publication is up (webrtcup), ``"lost"``
when the Janus session or the peer connection failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import httpx
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import VideoFrame

from common.aio import cancel_and_wait, within
from common.wire.call import Grant, absolute_janus_url
from edge.teller import linkrate, pacing, receive, retransmit
from edge.vision.roi import EncoderSettings
from janus_client.errors import JanusError, VideoRoomError
from janus_client.janus import JanusClient, JanusSession
from janus_client.videoroom import VideoRoom

log = logging.getLogger("cuntong.teller.peer")

ADAPT_EVERY_S = 5.0
NO_SUCH_FEED = 428
ID_EXISTS = 436
DATA_LABEL = "cuntong"


class MediaSource(Protocol):
    """Builds fresh tracks for each publication (``media.CallMedia``)."""

    link_kbps: float
    ceiling_kbps: float
    link_loss: float
    settings: EncoderSettings | None  # what the encoders were last fitted to
    retransmit_share: float
    pacing_share: float
    speaker: str

    async def prepare(self) -> None: ...
    def tracks(self) -> tuple[MediaStreamTrack, MediaStreamTrack]: ...  # (audio, video)
    def fit(self, link_kbps: float, loss: float = 0.0) -> None: ...
    def release(self) -> None: ...  # publishing stopped (priority back to ordinary)


def rtc_config(grant: Grant, relay_only: bool = False) -> RTCConfiguration:
    """The grant's ICE servers; ``relay_only`` gathers no host candidate, so every packet
    goes through the grant's TURN server (how the weak-link tests route the whole call
    through the impairment relay in front of coturn)."""
    servers = [
        RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
        for s in grant.ice_servers
        if s.get("urls")
    ]
    policy = RTCIceTransportPolicy.RELAY if relay_only else RTCIceTransportPolicy.ALL
    return RTCConfiguration(iceServers=servers or None, iceTransportPolicy=policy)


@dataclass
class Incoming:
    """What arrived from the teller: the latest video frame, counts, the audio level."""

    frame: VideoFrame | None = None
    frames: dict[str, int] = field(default_factory=lambda: {"audio": 0, "video": 0})
    loudest: int = 0


class RoomPeer:
    def __init__(
        self,
        grant: Grant,
        media: MediaSource,
        on_text: Callable[[str], None],
        on_event: Callable[[str], None],
        relay_only: bool = False,
        *,
        cloud_url: str | None = None,
        cloud_tls: ssl.SSLContext | None = None,
    ) -> None:
        self.grant = grant
        self.relay_only = relay_only
        #: Where a grant's Janus path (the cloud's signalling gate) lies: the terminal's
        #: enrolment URL, trusted through the factory claim's root CA (``cloud_tls``).
        self.cloud_url, self.cloud_tls = cloud_url, cloud_tls
        self.media = media
        self.on_text, self.on_event = on_text, on_event
        self.incoming = Incoming()
        self.video: MediaStreamTrack | None = None  # the track being published now
        self.publications = 0
        #: what the publisher's senders did with NACKs (None: not budgeted)
        self.retransmissions: retransmit.Retransmissions | None = None
        #: what the publisher's video pacer did (None: not paced)
        self.paced: pacing.Paced | None = None
        self._client: JanusClient | None = None
        self._session_cm: Any = None
        self._session: JanusSession | None = None
        self._pub_pc: RTCPeerConnection | None = None
        self._sub_pc: RTCPeerConnection | None = None
        self._pub_room: VideoRoom | None = None
        self._sub_room: VideoRoom | None = None
        self._channel: Any = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._watch: asyncio.Task[None] | None = None
        self._adapt: asyncio.Task[None] | None = None
        self._lost_reported = False
        # A room event (the teller published) and a follow (the desk's connect) can both
        # ask to subscribe at once; one subscription at a time, or one of them would leak.
        self._sub_lock = asyncio.Lock()

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Join the room; raises JanusError when Janus cannot be reached or refuses."""
        await self.media.prepare()
        url = absolute_janus_url(self.grant.janus_url, self.cloud_url)
        gated = url != self.grant.janus_url and url.startswith("https://")
        transport = httpx.AsyncHTTPTransport(verify=self.cloud_tls) if gated else None
        self._client = JanusClient(url, self.grant.token, transport=transport)
        await self._client.__aenter__()
        self._session_cm = self._client.session(keepalive_every=10.0)
        self._session = await self._session_cm.__aenter__()
        try:
            await self._publish()
        except BaseException:
            await self._teardown()
            raise

    async def republish(self, attempts: int = 30, pause: float = 1.0) -> None:
        """The same grant, a fresh Janus session: publish (and subscribe) again."""
        for attempt in range(attempts):
            await self._teardown()
            try:
                await self.start()
                return
            except VideoRoomError as err:
                if err.code != ID_EXISTS:
                    raise
                log.info("old publication still in the room; retry %d", attempt + 1)
            except (JanusError, OSError) as err:
                log.info("republish failed (%s); retry %d", err, attempt + 1)
            await asyncio.sleep(pause)
        raise JanusError("could not republish into the room")

    async def close(self) -> None:
        await self._teardown()

    # --- what the call uses ----------------------------------------------------------

    def send(self, text: str) -> bool:
        """Send one data-channel text to the teller; False when the channel is not open."""
        if self._channel is None or self._channel.readyState != "open":
            return False
        self._channel.send(text)
        return True

    async def follow(self, peer_feed: str) -> None:
        """Subscribe to another teller's feed (a transfer)."""
        self.grant = replace(self.grant, peer_feed=peer_feed)
        async with self._sub_lock:
            await self._drop_subscription()
        await self._try_subscribe()

    # --- publishing ------------------------------------------------------------------

    async def _publish(self) -> None:
        assert self._session is not None
        self._lost_reported = False
        pc = RTCPeerConnection(rtc_config(self.grant, self.relay_only))
        self._pub_pc = pc
        audio, video = self.media.tracks()
        self.video = video
        pc.addTrack(audio)
        pc.addTrack(video)
        self._budget_retransmissions(pc)
        self._channel = pc.createDataChannel(DATA_LABEL)
        pc.on("connectionstatechange", lambda: self._pc_state(pc))
        await pc.setLocalDescription(await pc.createOffer())
        self._pub_room = await VideoRoom.attach(self._session)
        joined = await self._pub_room.publish(
            self.grant.room,
            self.grant.feed,
            {"type": "offer", "sdp": pc.localDescription.sdp},
            pin=self.grant.pin or None,
        )
        await pc.setRemoteDescription(RTCSessionDescription(**joined.answer))
        self._pace(pc)
        self.publications += 1
        self._watch = asyncio.create_task(self._watch_room(), name="janus-room-events")
        self._adapt = asyncio.create_task(self._adapt_loop(pc), name="link-rate")
        if any(str(p.get("id")) == self.grant.peer_feed for p in joined.publishers):
            await self._try_subscribe()

    def _budget_retransmissions(self, pc: RTCPeerConnection) -> None:
        """All retransmissions within ``retransmit_share`` of the configured link rate
        (``edge.teller.retransmit``): after an outage the receivers ask for everything it
        swallowed, more than the link's queue holds; what does not fit is skipped and a
        keyframe sent instead."""
        share = self.media.retransmit_share
        if share <= 0:
            return
        try:
            self.retransmissions = retransmit.install(
                pc, max_age_s=0.0, rate_bps=share * self.media.ceiling_kbps * 1000
            )
        except RuntimeError as err:  # an aiortc without the seams: resend everything
            log.warning("retransmissions not budgeted: %s", err)

    def _pace(self, pc: RTCPeerConnection) -> None:
        """The video at ``pacing_share`` of the configured link, its frames spread out so
        the audio does not wait behind a keyframe in the link's queue
        (``edge.teller.pacing``). After ``setRemoteDescription``: bundling picks the
        transport there, and no media flows before ICE and DTLS are up."""
        share = self.media.pacing_share
        self.paced = None
        if share <= 0:
            return
        try:
            self.paced = pacing.install(pc, self._pace_bps(self.media.link_kbps))
        except RuntimeError as err:  # an aiortc without the seam: its bursts as before
            log.warning("video not paced: %s", err)

    def _pace_bps(self, link_kbps: float) -> float:
        fitted = self.media.settings
        ceiling = fitted.video_max_bps if fitted is not None else 0
        return pacing.pace_bps(link_kbps, self.media.pacing_share, ceiling)

    def _pc_state(self, pc: RTCPeerConnection) -> None:
        if pc is self._pub_pc and pc.connectionState == "failed":
            self._lost()

    def _lost(self) -> None:
        if not self._lost_reported:
            self._lost_reported = True
            self.on_event("lost")

    async def _adapt_loop(self, pc: RTCPeerConnection) -> None:
        """Fit the media to the link as the receiver reports say (loss).

        Janus's REMB already steers VP8 within the bounds ``fit`` sets; it is not read back
        here, because the encoder's target is clamped by those very bounds and would hold
        the rate down once lowered.

        The estimate is kept here from one interval to the next and the media re-fitted
        only when it moved far enough (``worth_refit``): estimating from the fitted rate
        instead meant an 8% step never passed the 15% threshold, and a rate once cut never
        grew back."""
        rate = self.media.link_kbps
        while True:
            await asyncio.sleep(ADAPT_EVERY_S)
            loss = 0.0
            for stat in (await pc.getStats()).values():
                if getattr(stat, "type", "") == "remote-inbound-rtp":
                    loss = max(loss, (getattr(stat, "fractionLost", 0) or 0) / 256)
            rate = linkrate.next_rate(
                rate,
                self.media.ceiling_kbps,
                loss,
                expected_loss=self.media.link_loss,
            )
            log.debug("interval loss %.1f%% -> %.0f kbit/s", loss * 100, rate)
            if linkrate.worth_refit(self.media.link_kbps, rate):
                log.info("link now %.0f kbit/s (loss %.1f%%)", rate, loss * 100)
                self.media.fit(rate, loss)
                if self.paced is not None:
                    self.paced.pacer.set_rate(self._pace_bps(rate))

    async def _watch_room(self) -> None:
        """Events on the publisher handle: media up, the teller (un)publishing, failure."""
        session, room = self._session, self._pub_room
        assert session is not None and room is not None
        while True:
            try:
                event = await session.next_event(room.handle_id, wait=2.0)
            except JanusError:
                if session.failed:
                    self._lost()
                    return
                continue
            data = event.data
            if event.kind == "webrtcup":
                self.on_event("up")
            elif event.kind == "hangup":
                self._lost()
            feeds = {str(p.get("id")) for p in data.get("publishers", []) or []}
            if self.grant.peer_feed in feeds and self._sub_pc is None:
                await self._try_subscribe()
            gone = {str(data.get(k)) for k in ("unpublished", "leaving") if k in data}
            if self.grant.peer_feed in gone:
                async with self._sub_lock:
                    await self._drop_subscription()

    # --- subscribing -----------------------------------------------------------------

    async def _try_subscribe(self) -> None:
        """Subscribe to ``peer_feed`` unless a subscription is up already."""
        async with self._sub_lock:
            if self._sub_pc is not None:
                return
            try:
                await self._subscribe()
            except VideoRoomError as err:
                if err.code != NO_SUCH_FEED:
                    raise
                await self._drop_subscription()  # not published yet: its event brings us back

    async def _subscribe(self) -> None:
        assert self._session is not None
        self._sub_room = await VideoRoom.attach(self._session)
        offer = await self._sub_room.subscribe(
            self.grant.room, [self.grant.peer_feed], pin=self.grant.pin or None
        )
        pc = RTCPeerConnection(rtc_config(self.grant, self.relay_only))
        self._sub_pc = pc
        pc.on("track", self._consume)
        pc.on("datachannel", self._on_channel)
        await pc.setRemoteDescription(RTCSessionDescription(**offer))
        receive.install(pc)  # bounded jitter buffers, Opus FEC/PLC (before any packet)
        # Janus relays a publisher's data to a subscriber only once the subscriber itself
        # opened a channel (its "data ready"); the relayed messages then come on a channel
        # Janus opens, named after the publisher.
        self._on_channel(pc.createDataChannel(DATA_LABEL))
        await pc.setLocalDescription(await pc.createAnswer())
        await self._sub_room.start({"type": "answer", "sdp": pc.localDescription.sdp})

    def _on_channel(self, channel: Any) -> None:
        channel.on("message", lambda m: self.on_text(m if isinstance(m, str) else m.decode()))

    def _consume(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio" and self.media.speaker:
            self._play(track)
            return
        task = asyncio.create_task(self._pull(track), name=f"teller-{track.kind}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _play(self, track: MediaStreamTrack) -> None:
        """The teller's voice on the terminal's speaker (ALSA through PyAV, or a PulseAudio
        sink: the echo canceller's)."""
        from aiortc.contrib.media import MediaRecorder

        if self.media.speaker.startswith("pulse:"):
            self._spawn(self._play_pulse(track, self.media.speaker.removeprefix("pulse:")))
            return

        async def play() -> None:
            try:
                recorder = MediaRecorder(self.media.speaker, format="alsa")
                recorder.addTrack(track)
                await recorder.start()
            except (OSError, ValueError) as err:  # PyAV's errors derive from these
                log.warning("no speaker %r (%s): the teller is not heard", self.media.speaker, err)
                await self._pull(track)
                return
            try:
                await asyncio.Event().wait()  # until the call's teardown cancels us
            finally:
                await recorder.stop()

        self._spawn(play())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro, name="teller-voice")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _play_pulse(self, track: MediaStreamTrack, sink: str) -> None:
        from edge.teller.sources import PulseSpeaker

        try:
            async with PulseSpeaker(sink) as play:
                with contextlib.suppress(MediaStreamError):
                    while True:
                        frame = await track.recv()
                        self.incoming.frames["audio"] += 1
                        await play(frame)
        except OSError as err:  # no pacat, or the sound server went away
            log.warning("no speaker %r (%s): the teller is not heard", sink, err)
            await self._pull(track)

    async def _pull(self, track: MediaStreamTrack) -> None:
        import numpy as np

        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                self.incoming.frames[track.kind] += 1
                if isinstance(frame, VideoFrame):
                    self.incoming.frame = frame
                elif self.incoming.frames["audio"] % 25 == 1:  # a level twice a second
                    pcm = np.frombuffer(bytes(frame.planes[0]), np.int16)
                    self.incoming.loudest = max(self.incoming.loudest, int(np.abs(pcm).max()))

    async def _drop_subscription(self) -> None:
        pc, room = self._sub_pc, self._sub_room
        self._sub_pc = self._sub_room = None
        if room is not None:
            with contextlib.suppress(JanusError):
                await room.detach()
        if pc is not None:
            await pc.close()

    # --- teardown --------------------------------------------------------------------

    async def _teardown(self) -> None:
        try:
            for task in (self._watch, self._adapt):
                await cancel_and_wait(task)
        finally:  # stopped meanwhile: the call's resources still go, then the stop goes on
            self._watch = self._adapt = None
            await self._release()

    async def _release(self) -> None:
        pulls = list(self._tasks)
        for task in pulls:
            task.cancel()
        await asyncio.gather(*pulls, return_exceptions=True)  # a speaker closes its device
        await self._drop_subscription()
        pc, self._pub_pc, self._pub_room, self._channel = self._pub_pc, None, None, None
        if pc is not None:
            await pc.close()
        self.media.release()
        # Destroying the session removes its handles: the room forgets this publisher.
        if self._session_cm is not None:
            with contextlib.suppress(JanusError, OSError, TimeoutError):
                await within(self._session_cm.__aexit__(None, None, None), 5)
            self._session_cm = self._session = None
        if self._client is not None:
            await self._client.__aexit__(None, None, None)
            self._client = None
