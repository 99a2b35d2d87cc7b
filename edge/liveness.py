"""Liveness checks on the terminal: the agent's shell around ``edge.vision``.

The cloud asks (command ``liveness_check`` with the business type); the agent runs the check
on its own camera frames, shows the challenge prompts to the customer, and sends back only
the result: the 0-100 score, the decision, the model versions, reason codes and a hash of
the frames. No frame, crop or landmark leaves the terminal or is written anywhere.

The vision stack (onnxruntime, NumPy) is imported and the models are verified and loaded on
the first check, so an agent that never checks pays nothing for them.

The models are the shipped (factory) set until fleet OTA installs a model bundle
(``models.bundle``) as the ``model.liveness`` component: the bundle is refused before it
takes a slot if it is malformed, unsigned or corrupted, and rolled back if its health check
(``edge.vision.health``) fails; once committed, the next check uses it. The bundle's version
and each model's version go into the agent's ``versions`` (telemetry and status).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.wire.package import Manifest as PackageManifest
from common.wire.package import PackageRefused
from edge.ota import Kind, read_slots, slot_dir
from models.bundle import COMPONENT, Bundle
from models.errors import ModelError
from models.registry import DEFAULT_MANIFEST, read_manifest
from models.signing import TrustedKeys

if TYPE_CHECKING:
    import numpy as np

    from edge.vision.frames import FrameThread
    from edge.vision.health import Budget
    from edge.vision.runtime import ModelSet
    from edge.vision.verdict import Policy, VisionResult

log = logging.getLogger("cuntong.liveness")

FrameSource = Callable[[], AsyncIterator["np.ndarray"]]
Prompt = Callable[[str], Awaitable[None]]
#: The bundle "version" of the models shipped with the agent.
FACTORY = "factory"
UNKNOWN = "unknown"  # reported when the slot record cannot be read
SHIPPED = DEFAULT_MANIFEST.parent / "onnx"


async def _log_prompt(text: str) -> None:
    # The customer screen shows this; until it exists the prompt goes to the log.
    log.info("challenge prompt: %s", text)


def read_bundle(payload: Path) -> Bundle:
    """The bundle in an OTA payload, with the files a thin bundle left out taken from the
    models this agent ships (each must match its signed SHA-256)."""
    return Bundle.parse(payload.read_bytes()).complete(SHIPPED)


@dataclass(frozen=True)
class Source:
    """Where the models come from: a committed OTA slot's bundle, or the factory folder."""

    version: str
    payload: Path | None = None  # None: the shipped models/manifest.json

    def load(self, trusted: TrustedKeys) -> ModelSet:
        from edge.vision.runtime import ModelSet

        if self.payload is None:
            return ModelSet.load(DEFAULT_MANIFEST, trusted)
        return ModelSet.from_bundle(read_bundle(self.payload), trusted)

    def model_versions(self) -> dict[str, str]:
        if self.payload is None:
            manifest = read_manifest(DEFAULT_MANIFEST)
        else:
            manifest = Bundle.parse(self.payload.read_bytes()).manifest
        return {m.name: m.version for m in manifest.models}


class Liveness:
    """Liveness checks with the models of the committed ``model.liveness`` slot.

    Every check first looks which bundle is committed (a small JSON read) and switches to it
    if it changed, so an OTA install or rollback takes effect at the next check with no
    restart. A bundle on trial is not used until its health check passes.
    """

    def __init__(
        self,
        frames: FrameSource | None,
        policy: Policy | None = None,
        prompt: Prompt = _log_prompt,
        state_dir: Path | None = None,
        trusted: TrustedKeys | None = None,
        budget: Budget | None = None,
        rt_priority: int = 0,
    ) -> None:
        self.frames = frames
        self.policy = policy
        self.prompt = prompt
        self.state_dir = state_dir
        #: The model signing keys this terminal trusts (default: models/keys/*.pub).
        self.trusted = trusted
        self.budget = budget
        #: SCHED_FIFO priority of the frame thread (0: ordinary scheduling); falls back to
        #: ordinary scheduling with a warning where the terminal does not permit it.
        self.rt_priority = rt_priority
        self.frame_thread: FrameThread | None = None
        self._models: tuple[Source, ModelSet] | None = None
        self._healthy: tuple[Source, ModelSet] | None = None  # passed health, maybe not yet used
        self._versions: tuple[Source, dict[str, str]] | None = None
        self._busy = asyncio.Lock()

    def _trust(self) -> TrustedKeys:
        if self.trusted is None:
            self.trusted = TrustedKeys.from_dir()
        return self.trusted

    def source(self) -> Source:
        """The committed bundle (on trial: the one before it), or the factory models."""
        if self.state_dir is None:
            return Source(FACTORY)
        s = read_slots(self.state_dir, COMPONENT)
        slot = (s.previous or s.active) if s.trial else s.active
        payload = slot_dir(self.state_dir, COMPONENT, slot) / "payload"
        version = s.versions.get(slot)
        # A slot never installed (the first rollback goes back to one) means the factory set.
        return Source(version, payload) if version and payload.exists() else Source(FACTORY)

    def versions(self) -> dict[str, str]:
        """For telemetry and status: the bundle version and each model's version.

        Never raises: telemetry must go on with a damaged slot record or bundle (the next
        check fails with the reason instead)."""
        try:
            src = self.source()
        except (ValueError, TypeError, OSError) as err:
            log.warning("cannot read the %s slots: %s", COMPONENT, err)
            return {COMPONENT: UNKNOWN}
        if self._versions is None or self._versions[0] != src:
            try:
                self._versions = (src, src.model_versions())
            except (ModelError, OSError) as err:
                log.warning("cannot read the model versions of bundle %s: %s", src.version, err)
                self._versions = (src, {})
        models = {f"{COMPONENT}/{name}": v for name, v in self._versions[1].items()}
        return {COMPONENT: src.version, **models}

    async def _current(self) -> ModelSet:
        src = self.source()
        if self._models is not None and self._models[0] == src:
            return self._models[1]
        if self._healthy is not None and self._healthy[0] == src:
            self._models = self._healthy  # loaded and exercised by the health check already
            self._healthy = None
        else:
            self._models = (src, await asyncio.to_thread(src.load, self._trust()))
        log.info("liveness models: bundle %s %s", src.version, self._models[1].versions)
        return self._models[1]

    async def models(self) -> ModelSet:
        """The models checks use now (the call's face-aware video shares them)."""
        return await self._current()

    async def _frame_thread(self) -> FrameThread:
        from edge.vision.frames import FrameThread

        if self.frame_thread is None:
            self.frame_thread = FrameThread(self.rt_priority)
            await asyncio.to_thread(self.frame_thread.start)
        return self.frame_thread

    def close(self) -> None:
        if self.frame_thread is not None:
            self.frame_thread.close()
        if self.rt_priority:
            with contextlib.suppress(RuntimeError, ValueError, NotImplementedError):
                asyncio.get_running_loop().remove_signal_handler(signal.SIGXCPU)

    def demote(self) -> None:
        """SIGXCPU: a frame ran past the real-time time limit; run ordinary from now on."""
        if self.frame_thread is not None:
            self.frame_thread.demote()

    def watch_rt_time(self) -> bool:
        """Demote the frame thread on SIGXCPU (the unit's LimitRTTIME soft limit) instead of
        letting the default action end the agent; only from the main thread's loop."""
        if self.rt_priority == 0:
            return False
        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGXCPU, self.demote)
        except (RuntimeError, ValueError, NotImplementedError):
            return False  # not the main thread (an in-process test agent)
        return True

    async def check(self, business_type: str) -> VisionResult:
        from edge.vision.session import LivenessCheck
        from edge.vision.verdict import Policy

        if self.frames is None:
            raise ValueError("this terminal has no camera configured")
        if self._busy.locked():
            raise ValueError("a liveness check is already running")
        async with self._busy:
            models = await self._current()
            check = LivenessCheck(
                models,
                policy=self.policy or Policy(),
                prompt=self.prompt,
                frame_thread=await self._frame_thread(),
            )
            stream = self.frames()
            try:
                return await check.run(stream, business_type)
            finally:
                await stream.aclose()  # type: ignore[attr-defined]

    # --- the OTA side: a model bundle as the ``model.liveness`` component ----------------

    def ota_kind(self) -> Kind:
        """How ``edge.ota.Ota`` checks a model bundle before and after it takes a slot."""
        return Kind(health=self._health, validate=self._validate, checked_in_process=True)

    async def _validate(self, payload: Path) -> None:
        """Refuse, before any slot changes, a bundle that is malformed, unsigned or corrupted."""
        try:
            bundle = await asyncio.to_thread(read_bundle, payload)
            await asyncio.to_thread(bundle.verify, self._trust())
        except ModelError as err:
            raise PackageRefused("bad_model_bundle", str(err)) from err

    async def _health(self, component: str, slot: Path) -> bool:
        """Load and exercise every model on the built-in frame, within the time budget."""
        from edge.vision import health

        version = PackageManifest.parse((slot / "manifest.json").read_bytes()).version
        try:
            bundle = await asyncio.to_thread(read_bundle, slot / "payload")
            models, report = await asyncio.to_thread(
                health.check_bundle, bundle, self._trust(), self.budget or health.Budget()
            )
        except ModelError as err:
            log.warning("model bundle %s unhealthy: %s", version, err)
            raise PackageRefused("model_unhealthy", str(err)) from err
        log.info("model bundle %s healthy: %s", version, report)
        self._healthy = (Source(version, slot / "payload"), models)
        return True


def camera_frames(camera: Any) -> FrameSource:
    """Frames of a ``firmware_adapters`` camera adapter, as RGB arrays."""

    async def stream() -> AsyncIterator[np.ndarray]:
        async for frame in camera.frames():
            yield frame.pixels

    return stream
