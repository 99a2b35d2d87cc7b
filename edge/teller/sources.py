"""The terminal's camera and microphone as aiortc tracks (imported only when a call starts).

``CameraTrack`` paces frames at the link's frame rate, scales them to the link's
resolution, passes them through an optional preprocessor (face-aware compression) and keeps
the latest frame for the customer's self view and for document captures. Its frames come
from a ``grab`` coroutine: the terminal's camera adapter, or in simulation the moving test
pattern of ``firmware_adapters.camera.synthetic`` with the capture time drawn into every
frame, so a receiver can measure glass-to-glass latency with ``latency_ms``.

``ToneTrack`` is the simulated microphone (a 440 Hz tone); a real terminal's microphone is
ALSA through PyAV (``microphone``), or, with echo cancellation, the PulseAudio source of
``module-echo-cancel`` (``PulseMicrophone``; the teller's voice then plays into the
canceller's sink through ``PulseSpeaker``). Those two use PulseAudio's own ``parec`` and
``pacat`` clients on pipes: PyAV's bundled FFmpeg has no PulseAudio device, and its bundled
ALSA library does not load the system's PulseAudio plugin.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import fractions
import time
from collections.abc import Awaitable, Callable

import numpy as np
from aiortc.mediastreams import AudioStreamTrack, MediaStreamTrack, VideoStreamTrack
from av import AudioFrame, VideoFrame

from common.aio import within
from firmware_adapters.camera.synthetic import read_stamp, synthetic_frame

VIDEO_CLOCK = 90_000
TONE_HZ = 440
Grab = Callable[[int, int], Awaitable[np.ndarray]]  # (width, height) -> RGB frame
Preprocess = Callable[[np.ndarray], Awaitable[np.ndarray]]


def synthetic_grab(clock: Callable[[], dt.datetime] | None = None) -> Grab:
    """The simulated camera: a swaying, blinking face with the capture time in the corner."""
    index = 0
    now = clock or (lambda: dt.datetime.now(dt.UTC))

    async def grab(width: int, height: int) -> np.ndarray:
        nonlocal index
        index += 1
        return synthetic_frame(index, now(), width, height)

    return grab


def adapter_grab(camera: object) -> Grab:
    """Frames from a ``firmware_adapters`` camera, scaled to the requested size."""

    async def grab(width: int, height: int) -> np.ndarray:
        frame = await camera.read_frame()  # type: ignore[attr-defined]
        pixels: np.ndarray = frame.pixels
        if pixels.shape[1] != width or pixels.shape[0] != height:
            import cv2

            pixels = cv2.resize(pixels, (width, height), interpolation=cv2.INTER_AREA)
        return pixels

    return grab


class CameraTrack(VideoStreamTrack):
    """Video at a settable size and rate; ``latest`` is the last camera frame (RGB, before
    preprocessing: the self view shows what the camera sees)."""

    def __init__(
        self,
        grab: Grab,
        width: int = 640,
        height: int = 480,
        fps: int = 15,
        preprocess: Preprocess | None = None,
    ) -> None:
        super().__init__()
        self.grab, self.preprocess = grab, preprocess
        self.width, self.height, self.fps = width, height, fps
        self.latest: np.ndarray | None = None
        self._start: float | None = None
        self._due = 0.0

    def fit(self, width: int, height: int, fps: int) -> None:
        """Follow the link: the next frame has this size, frames come this often."""
        self.width, self.height, self.fps = width, height, fps

    async def recv(self) -> VideoFrame:
        now = time.monotonic()
        if self._start is None:
            self._start = self._due = now
        else:
            self._due += 1.0 / self.fps
            await asyncio.sleep(max(0.0, self._due - now))
        pixels = await self.grab(self.width, self.height)
        self.latest = pixels  # the camera's view, before any compression aid
        if self.preprocess is not None:
            pixels = await self.preprocess(pixels)
        frame = VideoFrame.from_ndarray(pixels, format="rgb24")
        frame.pts = int((time.monotonic() - self._start) * VIDEO_CLOCK)
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        return frame


class ToneTrack(AudioStreamTrack):
    """The simulated microphone: a 440 Hz sine at about a third of full scale."""

    def __init__(self) -> None:
        super().__init__()
        self._n = 0

    async def recv(self) -> AudioFrame:
        frame = await super().recv()  # silence, correctly paced
        t = (self._n + np.arange(frame.samples)) / frame.sample_rate
        pcm = (10_000 * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.int16)
        self._n += frame.samples
        frame.planes[0].update(pcm.tobytes())
        return frame


PULSE_RATE = 48_000
PULSE_FRAME = 960  # 20 ms


class PulseMicrophone(AudioStreamTrack):
    """A PulseAudio source (e.g. the echo canceller's ``aec_mic``) as 48 kHz mono frames,
    read from ``parec``. The pipe's pace is the sound card's; a source that stops or
    cannot be opened ends the track (``MediaStreamError``)."""

    def __init__(self, source: str) -> None:
        super().__init__()
        self.source = source
        self._proc: asyncio.subprocess.Process | None = None
        self._samples = 0

    async def _open(self) -> asyncio.subprocess.Process:
        self._proc = await asyncio.create_subprocess_exec(
            "parec",
            f"--device={self.source}",
            "--raw",
            "--format=s16le",
            f"--rate={PULSE_RATE}",
            "--channels=1",
            "--latency-msec=20",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        return self._proc

    async def recv(self) -> AudioFrame:
        from aiortc.mediastreams import MediaStreamError

        proc = self._proc or await self._open()
        assert proc.stdout is not None
        try:
            pcm = await proc.stdout.readexactly(PULSE_FRAME * 2)
        except asyncio.IncompleteReadError as err:
            self.stop()
            raise MediaStreamError(f"PulseAudio source {self.source!r} ended") from err
        frame = AudioFrame.from_ndarray(
            np.frombuffer(pcm, "<i2").reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate, frame.pts = PULSE_RATE, self._samples
        frame.time_base = fractions.Fraction(1, PULSE_RATE)
        self._samples += PULSE_FRAME
        return frame

    def stop(self) -> None:
        super().stop()
        if self._proc is not None and self._proc.returncode is None:
            self._proc.terminate()


class PulseSpeaker:
    """Frames played into a PulseAudio sink (e.g. the echo canceller's ``aec_spk``) through
    ``pacat``; ``async with PulseSpeaker(sink) as play: await play(frame)``."""

    def __init__(self, sink: str) -> None:
        self.sink = sink
        self._proc: asyncio.subprocess.Process | None = None
        self._resampler: object = None

    async def __aenter__(self) -> PulseSpeaker:
        from av.audio.resampler import AudioResampler

        self._resampler = AudioResampler(format="s16", layout="mono", rate=PULSE_RATE)
        self._proc = await asyncio.create_subprocess_exec(
            "pacat",
            "--playback",
            f"--device={self.sink}",
            "--raw",
            "--format=s16le",
            f"--rate={PULSE_RATE}",
            "--channels=1",
            "--latency-msec=40",
            stdin=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        return self

    async def __call__(self, frame: AudioFrame) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        for out in self._resampler.resample(frame):  # type: ignore[attr-defined]
            self._proc.stdin.write(bytes(out.planes[0])[: out.samples * 2])
        await self._proc.stdin.drain()

    async def __aexit__(self, *exc: object) -> None:
        if self._proc is None:
            return
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            await within(self._proc.wait(), 5)
        except TimeoutError:
            self._proc.kill()
            await self._proc.wait()
        self._proc = None


def microphone(device: str) -> MediaStreamTrack:
    """A real microphone (ALSA device name, e.g. ``default`` or ``hw:1``)."""
    from aiortc.contrib.media import MediaPlayer

    player = MediaPlayer(device, format="alsa", options={"channels": "1"})
    if player.audio is None:
        raise OSError(f"no audio from ALSA device {device!r}")
    return player.audio


def latency_ms(pixels: np.ndarray, now: dt.datetime) -> float | None:
    """Glass-to-glass delay of a received synthetic frame (None if its stamp is unreadable).

    The stamp holds the capture time of day (HHMMSSmmm, UTC); both ends share a clock in
    tests and on one host, which is where this measure is meant to be taken.
    """
    try:
        stamp = read_stamp(pixels)
    except (ValueError, IndexError):
        return None
    h, m, s, ms = int(stamp[0:2]), int(stamp[2:4]), int(stamp[4:6]), int(stamp[6:9])
    if h > 23 or m > 59 or s > 59:
        return None
    sent = now.astimezone(dt.UTC).replace(hour=h, minute=m, second=s, microsecond=ms * 1000)
    delay = (now - sent).total_seconds() * 1000
    if delay < -43_200_000:  # the frame left just before midnight
        delay += 86_400_000
    return delay
