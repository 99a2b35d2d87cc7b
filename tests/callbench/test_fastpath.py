"""The load generator's own RTP path: counters on crafted packets, then a real pair of
aiortc PeerConnections (ICE, DTLS, SRTP on loopback) sending the clip through it."""

from __future__ import annotations

import asyncio

import pytest
from aiortc import RTCPeerConnection
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from tests.callbench import fastpath, media

VIDEO_PT, AUDIO_PT = 96, 111


@pytest.fixture(scope="module")
def clip() -> media.Clip:
    return media.encode_clip(1.0, gop_seconds=0.5)


def packet(seq: int, payload: bytes, pt: int = VIDEO_PT, marker: bool = False) -> bytes:
    """An RTP packet as aiortc sends it: with a mid header extension (so the X bit is set)."""
    extensions = HeaderExtensionsMap()
    mid = RTCRtpHeaderExtensionParameters(id=1, uri="urn:ietf:params:rtp-hdrext:sdes:mid")
    extensions.configure(RTCRtpParameters(headerExtensions=[mid]))
    p = RtpPacket(payload_type=pt, sequence_number=seq, ssrc=7 if pt == VIDEO_PT else 8)
    p.marker, p.payload, p.extensions.mid = int(marker), payload, "0"
    return p.serialize(extensions)


def test_keyframe_start_is_read_from_the_vp8_descriptor(clip: media.Clip) -> None:
    assert clip.keyframes[0] and not clip.keyframes[1]
    key = Vp8Encoder._packetize(clip.frames[0], 1234)
    inter = Vp8Encoder._packetize(clip.frames[1], 1235)
    assert len(key) > 1, "a 640x360 keyframe spans several packets"
    assert fastpath.vp8_starts_keyframe(key[0])
    assert not fastpath.vp8_starts_keyframe(key[1])  # a continuation
    assert not fastpath.vp8_starts_keyframe(inter[0])
    assert not fastpath.vp8_starts_keyframe(b"")


def test_counter_finds_loss_frames_and_the_first_picture(clip: media.Clip) -> None:
    counter = fastpath.RtpCounter({VIDEO_PT: "video", AUDIO_PT: "audio"}.__getitem__)
    inter = Vp8Encoder._packetize(clip.frames[1], 1)
    key = Vp8Encoder._packetize(clip.frames[0], 2)
    seq, pictures = 65530, []
    # an interframe (no picture yet), then a keyframe whose second packet is lost
    for frame in (inter, key):
        for i, payload in enumerate(frame):
            lost = frame is key and i == 1
            if not lost:
                raw = packet(seq & 0xFFFF, payload, marker=i == len(frame) - 1)
                pictures.append(counter.count(raw, now=float(seq)))
            seq += 1
    counter.count(packet((seq - 1) & 0xFFFF, key[-1], marker=False), now=0.0)  # a duplicate
    for n in range(5):
        counter.count(packet(n, b"\xfc" + bytes(40), pt=AUDIO_PT), now=0.0)

    video, audio = counter.streams[7], counter.streams[8]
    assert video.kind == "video" and audio.kind == "audio"
    assert video.frames == 2
    assert video.max_seq - video.first_seq + 1 == len(inter) + len(key)  # across the wrap
    assert video.lost == 0, "a duplicate fills the gap in RFC 3550's arithmetic"
    assert video.received == len(inter) + len(key)
    assert (audio.received, audio.lost) == (5, 0)
    # the keyframe completes: the one and only first picture, at its last packet
    assert pictures.count(True) == 1 and pictures[-1] is True
    assert counter.first_picture == float(seq - 1)


def test_counter_reports_a_gap_as_loss() -> None:
    counter = fastpath.RtpCounter(lambda pt: "audio")
    for seq in (10, 11, 14, 15):
        counter.count(packet(seq, b"\xfc" + bytes(20), pt=AUDIO_PT), now=0.0)
    stream = counter.streams[8]
    assert (stream.received, stream.lost) == (4, 2)


async def test_pump_and_inbound_carry_the_clip_over_real_srtp(clip: media.Clip) -> None:
    pump = fastpath.Pump(fastpath.Packetised.of(clip))
    publisher, subscriber = RTCPeerConnection(), RTCPeerConnection()
    pictures: list[float] = []
    try:
        pump.add_clip(publisher)
        await publisher.setLocalDescription(await publisher.createOffer())
        await subscriber.setRemoteDescription(publisher.localDescription)
        await subscriber.setLocalDescription(await subscriber.createAnswer())
        inbound = fastpath.Inbound(subscriber, pictures.append)
        await publisher.setRemoteDescription(subscriber.localDescription)
        await asyncio.sleep(2.0)

        streams = inbound.streams
        kinds = sorted(s.kind for s in streams.values())
        assert kinds == ["audio", "video"], streams
        video = next(s for s in streams.values() if s.kind == "video")
        audio = next(s for s in streams.values() if s.kind == "audio")
        assert video.frames > 30 and audio.received > 50, streams
        assert video.lost == 0 and audio.lost == 0 and inbound.bad == 0
        assert len(pictures) == 1  # the clip starts on a keyframe
        sent = {t.kind: t.sent for t in (s.track for s in publisher.getSenders())}
        assert abs(sent["video"] - video.frames) <= 2, (sent, video)
        assert not pump.streams[0].track.restart_requested

        # Bytes that look like RTP but fail SRTP authentication are counted, not used.
        protocol = subscriber.getTransceivers()[0].receiver.transport.transport._connection
        nominated = protocol._nominated[1]
        counted = video.received + audio.received
        nominated.protocol.datagram_received(b"\x80\x60" + bytes(40), nominated.remote_addr)
        assert inbound.bad == 1 and video.received + audio.received == counted
    finally:
        await pump.stop()
        await publisher.close()
        await subscriber.close()
