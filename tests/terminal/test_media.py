"""Call media on a thin link: encoder settings applied to aiortc, face-aware video on the
terminal's real vision models (and plain video without them), the synthetic camera's stamp."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
from aiortc import rtcrtpsender
from aiortc.codecs import vpx
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from edge.teller import sources
from edge.teller.faceaware import FaceAware
from edge.teller.media import CallMedia
from edge.vision import roi
from modeltools.eval import compression


def _high_freq(img: np.ndarray) -> float:
    g = img.astype(np.float32).mean(axis=2)
    return float(np.abs(np.diff(g, axis=1)).mean())


async def test_thin_link_settings_reach_aiortc_and_face_aware_video_runs() -> None:
    media = CallMedia(simulate=True, link_kbps=300)
    await media.prepare()
    s = media.settings
    assert s is not None and (s.audio_bps, s.audio_channels) == (16_000, 1)
    assert (s.video_min_bps, s.video_max_bps) == (vpx.MIN_BITRATE, vpx.MAX_BITRATE)
    assert vpx.MIN_BITRATE < 250_000  # aiortc's own floor would not fit 300 kbit/s
    opus = rtcrtpsender.get_encoder(RTCRtpCodecParameters("audio/opus", 48000, 2))
    assert (opus.codec.bit_rate, opus.codec.layout.name) == (16_000, "mono")
    assert isinstance(media.preprocess, FaceAware)  # the repo's verified models are present

    frames = compression.synthetic_video(8)
    it = iter(frames)

    async def grab(width: int, height: int) -> np.ndarray:
        return next(it)

    track = sources.CameraTrack(grab, s.width, s.height, 30, media.preprocess)
    sent = [await track.recv() for _ in range(6)]
    assert media.preprocess.faces_seen >= 1 and media.preprocess.box is not None
    out = sent[-1].to_ndarray(format="rgb24")
    x0, y0, x1, y1 = roi.face_region(media.preprocess.box, out.shape)
    original = frames[5]
    # Background smoothed (fewer bits to code), face region kept close to the camera's.
    assert _high_freq(out[:, :60]) < 0.5 * _high_freq(original[:, :60])
    face_diff = np.abs(
        out[y0 + 14 : y1 - 14, x0 + 14 : x1 - 14].astype(int)
        - original[y0 + 14 : y1 - 14, x0 + 14 : x1 - 14]
    )
    assert face_diff.mean() < 3  # yuv420 round trip only
    # The link narrows: the picture gets smaller and slower for the next frames.
    media.video = track
    media.fit(150)
    narrow = media.settings
    assert (track.width, track.height, track.fps) == (narrow.width, narrow.height, narrow.fps)
    assert track.width * track.height * track.fps < s.width * s.height * s.fps


async def test_without_vision_models_the_call_sends_plain_video(tmp_path: Path) -> None:
    assert await FaceAware.load(manifest=tmp_path / "missing-manifest.json") is None


def test_the_synthetic_camera_stamp_gives_glass_to_glass_delay() -> None:
    sent_at = dt.datetime(2026, 5, 1, 9, 30, 15, 250_000, tzinfo=dt.UTC)
    frame = sources.synthetic_frame(7, sent_at, 480, 360)
    later = sent_at + dt.timedelta(milliseconds=180)
    assert sources.latency_ms(frame, later) == 180
    assert sources.latency_ms(np.zeros_like(frame), later) is None
    midnight = dt.datetime(2026, 5, 1, 23, 59, 59, 950_000, tzinfo=dt.UTC)
    next_day = midnight + dt.timedelta(milliseconds=100)
    assert sources.latency_ms(sources.synthetic_frame(1, midnight, 320, 240), next_day) == 100


async def test_face_aware_video_shares_the_liveness_models(tmp_path: Path) -> None:
    from edge.liveness import Liveness

    liveness = Liveness(None, state_dir=tmp_path)  # no bundle installed: the factory set
    media = CallMedia(simulate=True, models=liveness.models)
    await media.prepare()
    assert isinstance(media.preprocess, FaceAware)
    assert media.preprocess.models is await liveness.models()  # one set in memory, not two
