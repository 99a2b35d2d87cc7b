"""Weak-link encoder settings (``edge.vision.roi.encoder_settings``) applied to aiortc.

aiortc's defaults suit a LAN: VP8 never below 250 kbit/s, Opus stereo at 96 kbit/s. On a
300-500 kbit/s village link that leaves nothing for the rest of the call. aiortc offers no
per-call knob, so the bounds are set on its codec modules (the terminal makes one call at a
time) and the Opus encoder each sender creates is reconfigured before its first frame: mono,
16-24 kbit/s, in-band FEC and 40 ms packets on a lossy link (the receiving side's decoder
that uses the FEC is ``edge.teller.receive``). Resolution and frame rate are
the camera track's job (``sources.CameraTrack.fit``).
"""

from __future__ import annotations

from typing import Any

from edge.vision.roi import EncoderSettings

_current: EncoderSettings | None = None
OPUS_EXPECTED_LOSS_PCT = 10
#: aiortc's own VP8 bounds (min, default, max), to put back.
AIORTC_VP8 = (250_000, 500_000, 1_500_000)


def apply(settings: EncoderSettings) -> None:
    """Make every encoder aiortc creates from now on (and VP8's live bounds) follow these."""
    global _current
    from aiortc import rtcrtpsender
    from aiortc.codecs import vpx

    _current = settings
    vpx.MIN_BITRATE = settings.video_min_bps
    vpx.MAX_BITRATE = settings.video_max_bps
    vpx.DEFAULT_BITRATE = settings.video_bps
    if not getattr(rtcrtpsender.get_encoder, "cuntong", False):
        original = rtcrtpsender.get_encoder

        def get_encoder(codec: Any) -> Any:
            encoder = original(codec)
            if _current is not None and codec.mimeType.lower() == "audio/opus":
                configure_opus(encoder, _current)
            return encoder

        get_encoder.cuntong = True  # type: ignore[attr-defined]
        rtcrtpsender.get_encoder = get_encoder


def configure_opus(encoder: Any, settings: EncoderSettings) -> None:
    """Mono Opus at the settings' rate; the codec is not open yet, so this still applies."""
    from av.audio.resampler import AudioResampler

    layout = "mono" if settings.audio_channels == 1 else "stereo"
    encoder.codec.bit_rate = settings.audio_bps
    encoder.codec.layout = layout
    frame = 48 * settings.opus_ptime_ms  # samples per packet at 48 kHz
    options = {"application": "voip", "frame_duration": str(settings.opus_ptime_ms)}
    if settings.opus_fec:
        # libopus sizes its in-band FEC by the loss it expects and the rate: at 16 kbit/s
        # and 5% it put none in, at 24 kbit/s and 10% it does (docs/benchmarks/weak-link.md)
        options |= {"fec": "1", "packet_loss": str(OPUS_EXPECTED_LOSS_PCT)}
    encoder.codec.options = options
    # The encoder takes exactly one packet's worth of samples per frame.
    encoder.resampler = AudioResampler(format="s16", layout=layout, rate=48000, frame_size=frame)


def reset() -> None:
    """Back to aiortc's defaults (for a process that also runs other WebRTC peers)."""
    global _current
    from aiortc.codecs import vpx

    _current = None
    vpx.MIN_BITRATE, vpx.DEFAULT_BITRATE, vpx.MAX_BITRATE = AIORTC_VP8
