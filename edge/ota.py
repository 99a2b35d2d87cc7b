"""Over-the-air updates on the terminal: download with resume, verify, A/B install, health.

``ota_install`` arguments: ``url`` (HTTPS in production), ``manifest`` and ``signature``
(base64). The order is what keeps a bad package out: the manifest's signature is checked
before a byte is downloaded; the download resumes from a partial file with an HTTP range
request; the payload's size and SHA-256 are checked before it is copied into the inactive
slot; the slot is switched on trial, the health check runs, and a failed check (or an agent
that starts twice on trial without committing, see ``edge.ota_slots.boot``) rolls back.
Progress goes to the cloud as ``ota_progress`` events (spooled, so none are lost offline).

Components differ in what "valid" and "healthy" mean, so each may have a `Kind` (a row in
the ``kinds`` table): ``validate`` looks inside a downloaded payload before any slot changes
(a refusal installs nothing), ``health`` runs on trial (False, or a PackageRefused naming the
fault, rolls back). A model bundle is checked both ways (``edge.liveness``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from common.wire.commands import VerifyKey
from common.wire.package import Manifest, PackageRefused, verify
from edge import ota_slots
from edge.commands import Handler

log = logging.getLogger("cuntong.ota")

CHUNK = 64 * 1024
PROGRESS_EVERY_S = 1.0

Emit = Callable[[str, dict[str, Any]], int]
HealthCheck = Callable[[str, Path], Awaitable[bool]]
#: Looks inside a downloaded payload; raises PackageRefused to install nothing.
Validate = Callable[[Path], Awaitable[None]]


async def payload_intact(component: str, slot_dir: Path) -> bool:
    """Default health check: the installed payload still matches its manifest."""
    manifest = Manifest.parse((slot_dir / "manifest.json").read_bytes())
    digest = await asyncio.to_thread(_sha256, slot_dir / "payload")
    return digest == manifest.sha256


@dataclass(frozen=True)
class Kind:
    """How one component is checked: before it takes a slot, and on trial in it."""

    health: HealthCheck = payload_intact
    validate: Validate | None = None
    #: The health check runs inside the agent (not in a restarted one): a trial found at
    #: start means the check never finished (the agent crashed in it) and rolls back at once.
    checked_in_process: bool = False
    #: The component runs in a process of its own that must start again to use a new
    #: version (the agent itself): installing unpacks it (``unpack``) and switches its slot
    #: on trial with a deadline, and the trial ends in the restarted process
    #: (``edge.agent_slots``); the reply says ``RESTART`` instead of "healthy".
    unpack: Callable[[Path, Path], None] | None = None
    trial_s: float = 0.0
    #: Builds a slot from the installed one and a delta (payload, active slot, new slot);
    #: ``release`` tells which full release a slot holds (what a delta must start from).
    apply_delta: Callable[[Path, Path, Path], None] | None = None
    release: Callable[[Path], str | None] | None = None


#: In an ``ota_install`` result: the new version is on trial and runs after a restart.
RESTART = "restart_for_trial"


def read_slots(state_dir: Path, component: str) -> ota_slots.Slots:
    """The component's A/B slots as recorded under ``state_dir`` (empty if never installed)."""
    path = slots_path(state_dir, component)
    if not path.exists():
        return ota_slots.Slots()
    return ota_slots.Slots.from_dict(json.loads(path.read_text()))


def save_slots(state_dir: Path, component: str, s: ota_slots.Slots) -> None:
    """Record the component's slots (a rename: a power cut leaves the old or the new)."""
    path = slots_path(state_dir, component)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(s.to_dict()))
    os.replace(tmp, path)


def slots_path(state_dir: Path, component: str) -> Path:
    return state_dir / "ota" / "slots" / component / "slots.json"


def slot_dir(state_dir: Path, component: str, slot: str) -> Path:
    """Where a slot's ``payload`` and signed ``manifest.json`` live."""
    return state_dir / "ota" / "slots" / component / slot


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


async def download(
    http: httpx.AsyncClient,
    url: str,
    part: Path,
    size: int,
    progress: Callable[[int], None],
) -> int:
    """Fetch ``url`` into ``part``, resuming from what is already there; bytes fetched now."""
    have = _partial_size(part, size)
    if have == size:
        return 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    fetched = 0
    async with http.stream("GET", url, headers=headers) as r:
        if r.status_code == 200 and have:
            have = 0  # the server ignored the range: start over
        elif r.status_code not in (200, 206):
            raise PackageRefused("download_failed", f"HTTP {r.status_code}")
        with part.open("r+b" if have else "wb") as f:
            f.seek(have)
            f.truncate()
            async for chunk in r.aiter_bytes(CHUNK):
                f.write(chunk)
                fetched += len(chunk)
                if have + fetched > size:
                    raise PackageRefused("size_mismatch", "payload larger than its manifest")
                progress(have + fetched)
    return fetched


def _partial_size(part: Path, size: int) -> int:
    """Bytes already downloaded; a partial file larger than the payload is discarded."""
    have = part.stat().st_size if part.exists() else 0
    if have > size:
        part.unlink()
        return 0
    return have


class Ota:
    def __init__(
        self,
        state_dir: Path,
        trust: VerifyKey | None,
        emit: Emit,
        health: HealthCheck = payload_intact,
        http: Callable[[], httpx.AsyncClient] = lambda: httpx.AsyncClient(timeout=30),
        kinds: Mapping[str, Kind] = {},
        restart: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.time,
        known_only: tuple[str, ...] = (),
    ) -> None:
        self.state_dir = state_dir
        self.root = state_dir / "ota"
        self.trust = trust
        self.emit = emit
        self.health = health
        self.http = http
        self.kinds = kinds
        #: Asks for the process to start again (a rollback of a component that restarts).
        self.restart = restart
        self.clock = clock
        #: Component prefixes (``adapter.``) installed only with a Kind that loads them: any
        #: other such component is refused before anything is downloaded.
        self.known_only = known_only
        #: Bytes fetched by the last download (0 on a full resume), for tests and progress.
        self.last_fetched = 0

    def table(self) -> dict[str, Handler]:
        return {
            "ota_install": self.install,
            "ota_rollback": self.rollback,
            "ota_status": self.status,
        }

    # --- slot bookkeeping ----------------------------------------------------------------

    def slots(self, component: str) -> ota_slots.Slots:
        return read_slots(self.state_dir, component)

    def _save(self, component: str, s: ota_slots.Slots) -> None:
        save_slots(self.state_dir, component, s)

    def slot_dir(self, component: str, slot: str) -> Path:
        return slot_dir(self.state_dir, component, slot)

    def on_boot(self) -> list[str]:
        """At agent start: count trial boots; components rolled back by the watchdog."""
        rolled = []
        base = self.root / "slots"
        for path in sorted(base.glob("*/slots.json")) if base.exists() else []:
            component = path.parent.name
            before = self.slots(component)
            kind = self.kinds.get(component)
            if kind is not None and kind.unpack is not None:
                continue  # counted by the launcher before this process started
            crashed = before.trial and kind is not None and kind.checked_in_process
            after = ota_slots.rollback(before) if crashed else ota_slots.boot(before)
            self._save(component, after)
            if before.trial and not after.trial:
                rolled.append(component)
                self._report(component, before.versions.get(before.active, ""), "rolled_back")
        return rolled

    # --- commands ------------------------------------------------------------------------

    def _report(self, component: str, version: str, state: str, **extra: Any) -> None:
        self.emit(
            "ota_progress", {"component": component, "version": version, "state": state, **extra}
        )

    def _delta_for(self, args: dict[str, Any]) -> dict[str, Any] | None:
        """The offered delta whose base is the installed slot, if any (else the full)."""
        kind = self.kinds.get(str(args.get("component")))
        offered = args.get("deltas")
        if kind is None or kind.apply_delta is None or kind.release is None:
            return None
        if not isinstance(offered, list):
            return None
        s = self.slots(str(args["component"]))
        if s.trial:
            return None
        have = kind.release(self.slot_dir(str(args["component"]), s.active))
        for d in offered:
            if isinstance(d, dict) and have is not None and d.get("from_sha256") == have:
                return d
        return None

    async def install(self, args: dict[str, Any]) -> dict[str, Any]:
        if self.trust is None:
            raise ValueError("refused: no trusted package key on this terminal")
        component = str(args.get("component", ""))
        if component.startswith(self.known_only) and component not in self.kinds:
            self._report(component, str(args.get("version", "?")), "refused", reason="unknown")
            raise ValueError(f"refused: nothing on this terminal loads {component}")
        delta = self._delta_for(args)
        if delta is not None:
            args = {**args, **{k: delta[k] for k in ("url", "manifest", "signature")}}
        try:
            raw = base64.b64decode(args["manifest"], validate=True)
            signature = base64.b64decode(args["signature"], validate=True)
        except (binascii.Error, TypeError) as err:
            raise ValueError(f"refused: manifest and signature must be base64: {err}") from err
        try:
            m = verify(self.trust, raw, signature)
        except PackageRefused as err:
            self._report(
                args.get("component", "?"), args.get("version", "?"), "refused", reason=err.reason
            )
            raise ValueError(f"refused: {err}") from err
        work = self.root / "downloads"
        work.mkdir(parents=True, exist_ok=True)
        part = work / f"{m.component}-{m.version}{'.delta' if delta else ''}.part"
        last = [0.0]

        def progress(done: int) -> None:
            now = time.monotonic()
            if now - last[0] >= PROGRESS_EVERY_S or done == m.size:
                last[0] = now
                pct = round(100 * done / m.size, 1) if m.size else 100.0
                self._report(
                    m.component, m.version, "downloading", bytes=done, total=m.size, pct=pct
                )

        async with self.http() as http:
            try:
                self.last_fetched = await download(http, str(args["url"]), part, m.size, progress)
            except httpx.HTTPError as err:
                self._report(m.component, m.version, "download_interrupted")
                raise ValueError(f"download interrupted ({err}); resumes on retry") from err
        if part.stat().st_size != m.size or await asyncio.to_thread(_sha256, part) != m.sha256:
            part.unlink()
            self._report(m.component, m.version, "refused", reason="digest_mismatch")
            raise ValueError("refused: payload does not match its signed manifest")
        kind = self.kinds.get(m.component)
        # A delta is checked as it is applied (``_stage``); a full payload here.
        if kind is not None and kind.validate is not None and delta is None:
            try:
                await kind.validate(part)
            except PackageRefused as err:
                part.unlink()
                self._report(m.component, m.version, "refused", reason=err.reason, detail=str(err))
                raise ValueError(f"refused: {err}") from err
        if kind is not None and kind.unpack is not None:
            return await self._stage(kind, m, raw, part, delta is not None)
        return await self._activate(m, raw, part)

    async def _stage(
        self, kind: Kind, m: Manifest, raw: bytes, part: Path, is_delta: bool
    ) -> dict[str, Any]:
        """A component that restarts: build the new slot beside the old ones (unpack, or
        apply the delta to the active slot), put it in place only once it is whole, and
        switch on trial. A refusal leaves every slot and the slot record as they were."""
        before = self.slots(m.component)
        target = self.slot_dir(m.component, before.inactive)
        staging = target.with_name(f"{before.inactive}.staging")
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        os.replace(part, staging / "payload")
        (staging / "manifest.json").write_bytes(raw)
        try:
            if is_delta:
                assert kind.apply_delta is not None
                active = self.slot_dir(m.component, before.active)
                await asyncio.to_thread(kind.apply_delta, staging / "payload", active, staging)
            else:
                assert kind.unpack is not None
                await asyncio.to_thread(kind.unpack, staging / "payload", staging)
        except PackageRefused as err:
            shutil.rmtree(staging)
            self._report(m.component, m.version, "refused", reason=err.reason, detail=str(err))
            raise ValueError(f"refused: {err}") from err
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
        self._report(m.component, m.version, "installed", slot=before.inactive, delta=is_delta)
        until = self.clock() + kind.trial_s
        self._save(m.component, ota_slots.switch(before, m.version, until))
        self._report(m.component, m.version, "on_trial", slot=before.inactive)
        return {
            "component": m.component,
            "version": m.version,
            "slot": before.inactive,
            "delta": is_delta,
            RESTART: True,
        }

    async def _activate(self, m: Manifest, raw: bytes, part: Path) -> dict[str, Any]:
        before = self.slots(m.component)
        target = self.slot_dir(m.component, before.inactive)
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        os.replace(part, target / "payload")
        (target / "manifest.json").write_bytes(raw)
        self._report(m.component, m.version, "installed", slot=before.inactive)
        kind = self.kinds.get(m.component)
        trial = ota_slots.switch(before, m.version)
        self._save(m.component, trial)
        health = kind.health if kind is not None else self.health
        try:
            healthy, why = await health(m.component, target), "health check failed"
        except PackageRefused as err:
            healthy, why = False, f"health check failed ({err})"
        if healthy:
            self._save(m.component, ota_slots.commit(trial))
            self._report(m.component, m.version, "healthy", slot=trial.active)
            return {"component": m.component, "version": m.version, "slot": trial.active}
        self._save(m.component, ota_slots.rollback(trial))
        self._report(m.component, m.version, "rolled_back", slot=before.active, detail=why)
        raise ValueError(f"{why}; rolled back to slot {before.active}")

    async def rollback(self, args: dict[str, Any]) -> dict[str, Any]:
        component = str(args["component"])
        s = self.slots(component)
        after = (
            ota_slots.rollback(ota_slots.switch(s, s.versions.get(s.inactive, "")))
            if s.previous is None
            else ota_slots.rollback(s)
        )
        self._save(component, after)
        self._report(
            component, after.versions.get(after.active, ""), "rolled_back", slot=after.active
        )
        kind = self.kinds.get(component)
        if kind is not None and kind.unpack is not None and self.restart is not None:
            # The reply leaves first; then the launcher starts the slot gone back to.
            asyncio.get_running_loop().call_later(1.0, self.restart, f"{component} rollback")
        return {
            "component": component,
            "slot": after.active,
            "version": after.versions.get(after.active),
        }

    async def status(self, args: dict[str, Any]) -> dict[str, Any]:
        base = self.root / "slots"
        return {
            p.parent.name: self.slots(p.parent.name).to_dict()
            for p in (sorted(base.glob("*/slots.json")) if base.exists() else [])
        }
