"""The terminal's receive path: bounded jitter buffers and Opus with loss concealment.

aiortc 1.16 decodes each Opus packet alone (no in-band FEC, no packet-loss concealment) and
its jitter buffers stall on a lost packet (``edge.teller.jitter``). Two seams fix that for
the teller's voice and picture on the terminal:

- ``ConcealingOpusDecoder`` calls libopus directly (ctypes; the system's ``libopus.so.0``,
  else the copy PyAV ships). When a packet's timestamp jumps past the samples expected,
  the missing stretch is filled before the packet is decoded: the 20-40 ms just before it
  from that packet's in-band FEC (``decode_fec=1``; libopus falls back to concealment when
  the packet carries none), anything earlier with Opus PLC. A hole longer than
  ``MAX_CONCEAL_S`` is left as a hole (an outage, not a lost packet: inventing a second of
  sound helps no one). Each frame says what it is in ``frame.opaque``: ``"decoded"``,
  ``"fec"`` or ``"plc"`` (a ``FrameKind``), so a receiver can count what was real.
- ``install(pc)`` puts ``jitter.VideoJitterBuffer``/``AudioJitterBuffer`` on each receiver
  of a peer connection, and makes aiortc's decoder threads build ``ConcealingOpusDecoder``
  for Opus. Both reach into aiortc: the receiver's jitter buffer is a private attribute (set
  once, right after ``setRemoteDescription``, before any packet), and the decoder factory is
  the module global ``aiortc.rtcrtpreceiver.get_decoder`` (wrapped once per process, as
  ``edge.teller.encoding`` wraps ``get_encoder``). Both are checked: an aiortc that renames
  them makes ``install`` raise instead of silently running the stock path.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import fractions
import functools
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from aiortc.codecs.base import Decoder
from aiortc.jitterbuffer import JitterFrame
from av import AudioFrame

from edge.teller.jitter import AudioJitterBuffer, VideoJitterBuffer

__all__ = ["ConcealingOpusDecoder", "install"]

log = logging.getLogger("cuntong.teller.receive")

RATE = 48_000
CHANNELS = 2  # as aiortc's own decoder: what the rest of aiortc (and a recorder) expects
MAX_FRAME = 5_760  # 120 ms, the longest Opus packet
MAX_CONCEAL_S = 0.2
TIME_BASE = fractions.Fraction(1, RATE)
_JITTER_ATTR = "_RTCRtpReceiver__jitter_buffer"


@functools.cache
def libopus() -> ctypes.CDLL:
    """libopus: the system's, else the one bundled in PyAV's wheel."""
    import av

    found = ctypes.util.find_library("opus")
    candidates = [found] if found else []
    candidates += sorted(str(p) for p in Path(av.__file__).parent.parent.glob("av.libs/libopus*"))
    for name in candidates:
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        lib.opus_decoder_create.restype = ctypes.c_void_p
        lib.opus_decoder_create.argtypes = [
            ctypes.c_int32,
            ctypes.c_int,
            ctypes.POINTER(ctypes.c_int),
        ]
        lib.opus_decode.restype = ctypes.c_int
        lib.opus_decode.argtypes = [
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.c_int32,
            ctypes.POINTER(ctypes.c_int16),
            ctypes.c_int,
            ctypes.c_int,
        ]
        lib.opus_decoder_destroy.argtypes = [ctypes.c_void_p]
        lib.opus_packet_get_nb_samples.restype = ctypes.c_int
        lib.opus_packet_get_nb_samples.argtypes = [ctypes.c_char_p, ctypes.c_int32, ctypes.c_int32]
        return lib
    raise OSError("libopus not found (Debian libopus0, or PyAV's bundled copy)")


class FrameKind(str):
    """What a decoded frame is (``"decoded"``, ``"fec"``, ``"plc"``): a fresh object per
    frame, because PyAV keys ``frame.opaque`` by the object's id and drops the key when any
    frame holding it is freed (a shared interned string would vanish from live frames)."""

    __slots__ = ()


class ConcealingOpusDecoder(Decoder):
    """Opus to 48 kHz stereo s16 frames, with the losses before each packet concealed."""

    def __init__(self, max_conceal_s: float = MAX_CONCEAL_S) -> None:
        self._lib = libopus()
        err = ctypes.c_int()
        self._dec = self._lib.opus_decoder_create(RATE, CHANNELS, ctypes.byref(err))
        if err.value != 0 or not self._dec:
            raise OSError(f"opus_decoder_create failed ({err.value})")
        self._pcm = (ctypes.c_int16 * (MAX_FRAME * CHANNELS))()
        self._next: int | None = None  # the timestamp the next packet should have
        self._last_len = 960
        self.max_conceal = int(max_conceal_s * RATE)

    def __del__(self) -> None:
        if getattr(self, "_dec", None):
            self._lib.opus_decoder_destroy(self._dec)
            self._dec = None

    def decode(self, encoded_frame: JitterFrame) -> list[Any]:
        data, ts = encoded_frame.data, encoded_frame.timestamp
        frames: list[AudioFrame] = []
        if self._next is not None and 0 < ts - self._next <= self.max_conceal:
            frames += self._conceal(self._next, ts - self._next, data)
        n = self._run(data, MAX_FRAME, fec=False)
        if n <= 0:
            return frames  # a corrupt packet: its stretch is concealed with the next one
        frames.append(self._frame(n, ts, "decoded"))
        self._next, self._last_len = ts + n, n
        return frames

    def _conceal(self, start: int, missing: int, following: bytes) -> list[AudioFrame]:
        """PLC for all but the last packet's worth of the gap; that one from the next
        packet's in-band FEC. Opus takes multiples of 2.5 ms; a remainder is dropped."""
        out = []
        fec_len = min(missing, self._last_len)
        plc = missing - fec_len
        while plc >= 120:
            chunk = min(plc, self._last_len) // 120 * 120
            n = self._run(None, chunk, fec=False)
            if n <= 0:
                return out
            out.append(self._frame(n, start, "plc"))
            start, plc = start + n, plc - n
        start += plc
        fec_len = fec_len // 120 * 120
        if fec_len:
            n = self._run(following, fec_len, fec=True)
            if n > 0:
                out.append(self._frame(n, start, "fec"))
        return out

    def _run(self, data: bytes | None, frame_size: int, fec: bool) -> int:
        n = self._lib.opus_decode(
            self._dec, data, len(data) if data else 0, self._pcm, frame_size, int(fec)
        )
        if n < 0:
            log.debug("opus_decode failed (%d)", n)
        return int(n)

    def _frame(self, samples: int, pts: int, kind: str) -> AudioFrame:
        pcm = np.ctypeslib.as_array(self._pcm)[: samples * CHANNELS].copy()
        frame = AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="stereo")
        frame.sample_rate = RATE
        frame.pts = pts
        frame.time_base = TIME_BASE
        frame.opaque = FrameKind(kind)
        return frame


def _patch_decoder() -> None:
    from aiortc import rtcrtpreceiver

    if getattr(rtcrtpreceiver.get_decoder, "cuntong", False):
        return
    original = rtcrtpreceiver.get_decoder

    def get_decoder(codec: Any) -> Any:
        if codec.mimeType.lower() == "audio/opus":
            return ConcealingOpusDecoder()
        return original(codec)

    get_decoder.cuntong = True  # type: ignore[attr-defined]
    rtcrtpreceiver.get_decoder = get_decoder


def install(pc: Any, clock: Any = time.monotonic) -> None:
    """Give each of ``pc``'s receivers the bounded jitter buffers and Opus concealment.
    Call after ``setRemoteDescription`` and before media flows."""
    _patch_decoder()
    for transceiver in pc.getTransceivers():
        receiver = transceiver.receiver
        if not hasattr(receiver, _JITTER_ATTR):
            raise RuntimeError(f"aiortc changed: no {_JITTER_ATTR} on RTCRtpReceiver")
        buffer = VideoJitterBuffer(clock) if transceiver.kind == "video" else AudioJitterBuffer()
        setattr(receiver, _JITTER_ATTR, buffer)
