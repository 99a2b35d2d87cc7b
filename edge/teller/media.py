"""What the terminal sends in a call: camera and microphone fitted to the measured link.

``CallMedia`` is built once by the agent (cheap: nothing heavy is imported until
``prepare``, which runs when the first call connects). ``prepare`` applies the weak-link
encoder settings for the link rate (``edge.vision.roi.encoder_settings``) and loads the
face-aware preprocessor when the terminal has its verified vision models; ``tracks`` gives
fresh tracks for each publication; ``snapshot_jpeg`` serves the self view and document
captures. In simulation the camera is the synthetic test pattern and the microphone a tone.
A terminal that is not simulated and has no camera configured never sends a made-up
picture: ``tracks`` raises ``CameraMissing`` (the call fails) and the agent reports the
camera as a peripheral fault.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from aiortc.mediastreams import MediaStreamTrack

    from edge.teller.faceaware import FaceAware
    from edge.teller.sources import CameraTrack
    from edge.vision.roi import EncoderSettings
    from edge.vision.runtime import ModelSet

from common.errors import CuntongError

log = logging.getLogger("cuntong.teller.media")


class CameraMissing(CuntongError):
    """The terminal has no camera configured: there is no picture to send."""


class CallMedia:
    def __init__(
        self,
        simulate: bool,
        camera: Any = None,
        *,  # by name: a parameter added in the middle must not shift the others
        audio_device: str = "",
        link_kbps: float = 400.0,
        link_loss: float = 0.0,
        face_aware: bool = True,
        models: Callable[[], Awaitable[ModelSet]] | None = None,
        echo_cancel: bool = False,
        nice: int = 0,
        retransmit_share: float = 0.25,
        pacing_share: float = 0.85,
    ) -> None:
        from edge.teller.priority import MediaPriority

        self.simulate = simulate
        self.camera = camera  # a firmware_adapters camera, or None
        self.audio_device = audio_device
        self.link_kbps = link_kbps
        #: the loss the link is known for: the first call's Opus encoder is created with
        #: in-band FEC from the start at 3% or more (an encoder is not reconfigured mid-call)
        self.link_loss = link_loss
        self.ceiling_kbps = link_kbps  # measured rates never exceed the configured link
        self.face_aware = face_aware
        #: the call's microphone and speaker through PulseAudio's echo canceller
        #: (``echo.MIC_SOURCE``/``echo.SPEAKER_SINK``) instead of ``audio_device``
        self.echo_cancel = echo_cancel
        self.models = models
        #: the send path's threads at ``nice`` while a call publishes (``edge.teller.priority``)
        self.priority = MediaPriority(nice)
        #: the share of the configured link all retransmissions together may use
        #: (``edge.teller.retransmit.Budget``; 0: every NACK answered)
        self.retransmit_share = retransmit_share
        #: the share of the link the video may take at any moment, paced
        #: (``edge.teller.pacing``; 0: aiortc's bursts)
        self.pacing_share = pacing_share
        self.settings: EncoderSettings | None = None
        self.preprocess: FaceAware | None = None
        self.video: CameraTrack | None = None
        self._prepared = False

    async def prepare(self) -> None:
        if self._prepared:
            return
        from edge.teller import encoding
        from edge.teller.faceaware import FaceAware
        from edge.vision.roi import encoder_settings

        self.settings = encoder_settings(self.link_kbps, self.link_loss)
        encoding.apply(self.settings)
        if self.face_aware:
            self.preprocess = await FaceAware.load(self.models)
        self._prepared = True
        log.info(
            "call media: %dx%d@%d, video %d kbit/s, audio %d kbit/s mono, face-aware %s",
            self.settings.width,
            self.settings.height,
            self.settings.fps,
            self.settings.video_bps // 1000,
            self.settings.audio_bps // 1000,
            "on" if self.preprocess else "off",
        )

    def fit(self, link_kbps: float, loss: float = 0.0) -> None:
        """A new link measure: encoder bounds and the camera's size and rate follow it."""
        from edge.teller import encoding
        from edge.vision.roi import encoder_settings

        self.link_kbps = link_kbps
        # a link known to be lossy stays fitted as lossy through a clean interval
        self.settings = encoder_settings(link_kbps, max(loss, self.link_loss))
        encoding.apply(self.settings)
        if self.video is not None:
            self.video.fit(self.settings.width, self.settings.height, self.settings.fps)

    def tracks(self) -> tuple[MediaStreamTrack, MediaStreamTrack]:
        from edge.teller import sources

        assert self.settings is not None, "prepare() first"
        s = self.settings
        if self.simulate:
            grab = sources.synthetic_grab()
        elif self.camera is not None:
            grab = sources.adapter_grab(self.camera)
        else:
            raise CameraMissing("no camera configured (peripherals file): no picture to send")
        self.video = sources.CameraTrack(grab, s.width, s.height, s.fps, self.preprocess)
        # Called on the loop thread: it and the encoder threads send this call's media.
        self.priority.raise_()
        return self.microphone(), self.video

    def release(self) -> None:
        """The call stopped publishing: its threads back to their ordinary priority."""
        self.priority.restore()

    def microphone(self) -> MediaStreamTrack:
        """The call's microphone: the echo canceller's source, an ALSA device, or a tone."""
        from edge.teller import echo, sources

        if self.echo_cancel:
            return sources.PulseMicrophone(echo.MIC_SOURCE)
        if self.audio_device:
            return sources.microphone(self.audio_device)
        return sources.ToneTrack()

    @property
    def speaker(self) -> str:
        """Where the teller's voice plays: an ALSA device, ``pulse:<sink>`` through the echo
        canceller, or "" in simulation (it is only counted)."""
        from edge.teller import echo

        if self.echo_cancel:
            return f"pulse:{echo.SPEAKER_SINK}"
        if self.simulate:
            return ""
        return self.audio_device or "default"

    def latest(self) -> np.ndarray | None:
        """The last frame the camera sent (RGB), for the self view."""
        return self.video.latest if self.video is not None else None

    async def capture(self, kind: str) -> bytes | None:
        """A document photo as JPEG: the live camera frame (a synthetic card in simulation)."""
        from edge.teller import jpeg

        if self.simulate:
            return jpeg.synthetic_document(kind)
        # A fresh full-resolution frame: the call's frames are scaled down for the link.
        frame = (await self.camera.read_frame()).pixels if self.camera is not None else None
        if frame is None:
            frame = self.latest()
        return jpeg.encode_rgb(frame) if frame is not None else None
