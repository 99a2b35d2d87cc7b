"""The liveness service follows the committed model.liveness OTA slot: install, refuse, roll back.

Real Ota (signature, download, digest, A/B slots) over an in-memory HTTP transport, and real
onnxruntime for the health check and the models the service loads.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from common.wire import package
from edge.liveness import FACTORY, SHIPPED, Liveness
from edge.ota import Ota
from models.bundle import COMPONENT, Bundle
from models.errors import ModelError
from tests.vision.bundles import PROBE, bank_bundle, corrupted, trusting

BANK = Ed25519PrivateKey.generate()
CLOUD = Ed25519PrivateKey.generate()  # the cloud's package key, trusted from enrolment


class Terminal:
    """An Ota and a Liveness on one state folder, fed by a fake package server."""

    def __init__(self, root: Path) -> None:
        self.payloads: dict[str, bytes] = {}
        self.events: list[dict[str, Any]] = []
        self.liveness = Liveness(None, state_dir=root, trusted=trusting(BANK))
        self.ota = Ota(
            root,
            CLOUD.public_key(),
            lambda kind, data: self.events.append(data) or 0,
            http=lambda: httpx.AsyncClient(transport=httpx.MockTransport(self._serve)),
            kinds={COMPONENT: self.liveness.ota_kind()},
        )

    def _serve(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=self.payloads[request.url.path])

    async def install(self, version: str, bundle: Bundle) -> dict[str, Any]:
        payload = bundle.to_bytes()
        self.payloads[f"/{version}"] = payload
        manifest = package.describe(COMPONENT, version, payload)
        return await self.ota.install(
            {
                "url": f"http://cloud/{version}",
                "manifest": base64.b64encode(manifest.to_bytes()).decode(),
                "signature": base64.b64encode(package.sign(CLOUD, manifest)).decode(),
            }
        )

    async def models_in_use(self) -> dict[str, str]:
        """Versions of the models a check would run now (loads them, as a check does)."""
        return (await self.liveness._current()).versions


@pytest.fixture
def terminal(tmp_path: Path) -> Terminal:
    return Terminal(tmp_path)


async def test_factory_models_until_a_bundle_is_installed_then_the_bundle_at_once(
    terminal: Terminal,
) -> None:
    assert terminal.liveness.versions()[COMPONENT] == FACTORY
    assert terminal.liveness.versions()[f"{COMPONENT}/cuntong-passive-baseline"] == "0.1.0"
    assert PROBE not in await terminal.models_in_use()

    result = await terminal.install("bank-1", bank_bundle(BANK, "2026.1"))
    assert result == {"component": COMPONENT, "version": "bank-1", "slot": "b"}
    v = terminal.liveness.versions()
    assert v[COMPONENT] == "bank-1" and v[f"{COMPONENT}/{PROBE}"] == "2026.1"
    healthy = terminal.liveness._healthy
    assert (await terminal.models_in_use())[PROBE] == "2026.1"
    assert terminal.liveness._models is healthy  # the health-checked set, not loaded twice

    await terminal.install("bank-2", bank_bundle(BANK, "2026.2"))
    assert (await terminal.models_in_use())[PROBE] == "2026.2"
    await terminal.ota.rollback({"component": COMPONENT})
    assert terminal.liveness.versions()[COMPONENT] == "bank-1"
    assert (await terminal.models_in_use())[PROBE] == "2026.1"
    states = [e["state"] for e in terminal.events]
    assert states.count("healthy") == 2 and states[-1] == "rolled_back"


async def test_a_thin_bundle_installs_with_the_models_the_agent_ships(terminal: Terminal) -> None:
    await terminal.install("bank-thin", bank_bundle(BANK, "2026.3").thin(SHIPPED))
    assert terminal.liveness.versions()[f"{COMPONENT}/{PROBE}"] == "2026.3"
    assert (await terminal.models_in_use())[PROBE] == "2026.3"
    assert terminal.events[-1]["state"] == "healthy"


async def test_first_rollback_returns_to_the_factory_models(terminal: Terminal) -> None:
    await terminal.install("bank-1", bank_bundle(BANK))
    await terminal.ota.rollback({"component": COMPONENT})
    assert terminal.liveness.versions()[COMPONENT] == FACTORY
    assert PROBE not in await terminal.models_in_use()


@pytest.mark.parametrize(
    ("bundle", "message"),
    [
        (bank_bundle(BANK, signed=False), "entry is unsigned"),
        (corrupted(bank_bundle(BANK)), "file corrupted or replaced"),
        (bank_bundle(Ed25519PrivateKey.generate()), "not in the trusted keys"),
    ],
)
async def test_unsigned_corrupted_or_foreign_bundles_change_nothing(
    terminal: Terminal, bundle: Bundle, message: str
) -> None:
    await terminal.install("bank-1", bank_bundle(BANK))
    before = terminal.ota.slots(COMPONENT)
    with pytest.raises(ValueError, match=f"refused: bad_model_bundle: .*{message}"):
        await terminal.install("bank-x", bundle)
    assert terminal.ota.slots(COMPONENT) == before
    assert terminal.liveness.versions()[COMPONENT] == "bank-1"
    assert terminal.events[-1]["state"] == "refused"
    assert terminal.events[-1]["reason"] == "bad_model_bundle"
    assert not list((terminal.ota.root / "downloads").iterdir())  # the payload is gone too


async def test_a_bundle_failing_its_health_check_rolls_back_by_itself(terminal: Terminal) -> None:
    await terminal.install("bank-1", bank_bundle(BANK))
    with pytest.raises(ValueError, match=r"model_unhealthy: .*not in 0-1.*rolled back to slot b"):
        await terminal.install("bank-sick", bank_bundle(BANK, "2026.9", scale=1.0))
    s = terminal.ota.slots(COMPONENT)
    assert (s.active, s.trial, s.versions) == ("b", False, {"a": "bank-sick", "b": "bank-1"})
    assert terminal.liveness.versions()[COMPONENT] == "bank-1"
    assert (await terminal.models_in_use())[PROBE] == "2026.1"
    assert terminal.events[-1]["state"] == "rolled_back"
    assert "not in 0-1" in terminal.events[-1]["detail"]


async def test_a_check_runs_on_the_installed_bundle(terminal: Terminal, head: np.ndarray) -> None:
    await terminal.install("bank-1", bank_bundle(BANK))

    async def frames() -> AsyncIterator[np.ndarray]:
        for _ in range(3):
            yield head

    terminal.liveness.frames = frames
    result = await terminal.liveness.check("password_reset")
    assert result.models[PROBE] == "2026.1"
    assert result.reasons == ("CHALLENGE_ABORTED",)  # three still frames: no challenge done


async def test_an_agent_that_died_in_the_health_check_rolls_back_at_its_next_start(
    terminal: Terminal,
) -> None:
    await terminal.install("bank-1", bank_bundle(BANK))
    real = terminal.liveness.ota_kind()

    async def dies(component: str, slot: Path) -> bool:
        raise SystemExit("onnxruntime took the process down")  # what a segfault amounts to

    terminal.ota.kinds = {COMPONENT: replace(real, health=dies)}
    with pytest.raises(SystemExit):
        await terminal.install("bank-2", bank_bundle(BANK, "2026.2"))
    assert terminal.ota.slots(COMPONENT).trial
    assert terminal.liveness.versions()[COMPONENT] == "bank-1"  # a trial is never used

    restarted = Terminal(terminal.ota.state_dir)  # the supervisor starts the agent again
    assert restarted.ota.on_boot() == [COMPONENT]
    s = restarted.ota.slots(COMPONENT)
    assert (s.active, s.trial) == ("b", False)
    assert restarted.liveness.versions()[COMPONENT] == "bank-1"
    assert restarted.events[-1]["state"] == "rolled_back"


async def test_a_damaged_slot_record_does_not_stop_telemetry(terminal: Terminal) -> None:
    await terminal.install("bank-1", bank_bundle(BANK))
    (terminal.ota.root / "slots" / COMPONENT / "slots.json").write_text("{not json")
    assert terminal.liveness.versions() == {COMPONENT: "unknown"}
    (terminal.ota.root / "slots" / COMPONENT / "b" / "payload").write_bytes(b"garbage")
    (terminal.ota.root / "slots" / COMPONENT / "slots.json").write_text(
        '{"active": "b", "versions": {"b": "bank-1"}}'
    )
    assert terminal.liveness.versions() == {COMPONENT: "bank-1"}  # no model versions to tell
    restarted = Terminal(terminal.ota.state_dir)  # nothing cached: the check reads the slot
    with pytest.raises(ModelError, match="not a model bundle"):
        await restarted.models_in_use()
