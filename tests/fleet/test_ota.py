"""OTA: signed packages, resumable download over real HTTP, A/B slots, health and rollback.

Adapter packages loaded and tried by a real agent: tests/fleet/test_adapter_update.py; the
agent itself: tests/fleet/test_agent_update.py."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from common.wire import package
from cuntong.servers.mosquitto import Broker
from edge import ota_slots
from edge.ota import Ota
from fleet.agent_release import adapter_package
from provisioning import keys as keys_lib
from tests.fleet.conftest import Agents
from tests.helpers import CloudProcess, eventually
from tests.integration.agents import new_id
from tests.integration.test_secure_path import _enrolled_agent

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB under a component with the default check


def test_slots_switch_commit_rollback_and_boot_watchdog() -> None:
    s = ota_slots.switch(ota_slots.Slots(versions={"a": "1.0"}), "2.0")
    assert (s.active, s.previous, s.trial) == ("b", "a", True)
    assert ota_slots.commit(s).trial is False
    assert ota_slots.rollback(ota_slots.commit(s)).active == "a"
    once = ota_slots.boot(s)
    assert once.active == "b" and once.boots == 1
    assert ota_slots.boot(once).active == "a"  # started twice on trial: did not come back
    with pytest.raises(ValueError):
        ota_slots.rollback(ota_slots.Slots())


def test_manifest_signature_binds_every_field() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    m = package.describe("model.face", "2.0", PAYLOAD)
    sig = package.sign(key, m)
    assert package.verify(key.public_key(), m.to_bytes(), sig) == m
    forged = package.Manifest(m.component, m.version, m.size, "0" * 64).to_bytes()
    with pytest.raises(package.PackageRefused, match="bad_signature"):
        package.verify(key.public_key(), forged, sig)
    with pytest.raises(package.PackageRefused, match="malformed"):
        package.verify(key.public_key(), b"{}", sig)
    with pytest.raises(ValueError):
        package.Manifest("../../etc", "1", 0, "0" * 64)


class _CutAfter(httpx.AsyncBaseTransport):
    """A real HTTP transport whose first response body breaks off after ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.limit = limit
        self.ranges: list[str | None] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.ranges.append(request.headers.get("range"))
        response = await self.inner.handle_async_request(request)
        if self.limit <= 0:
            return response
        limit, self.limit = self.limit, 0

        async def body() -> AsyncIterator[bytes]:
            sent = 0
            async for chunk in response.aiter_raw():
                yield chunk[: limit - sent]
                sent += len(chunk)
                if sent >= limit:
                    await response.aclose()
                    raise httpx.ReadError("link dropped")

        return httpx.Response(
            response.status_code, headers=response.headers, stream=_Stream(body())
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


class _Stream(httpx.AsyncByteStream):
    def __init__(self, it: AsyncIterator[bytes]) -> None:
        self.it = it

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.it:
            yield chunk


def _trust(tmp_path: Path) -> ed25519.Ed25519PublicKey:
    """What an enrolled terminal trusts: the cloud's command key (from the secured fixture)."""
    key = keys_lib.load_or_create(tmp_path / "cloud").command_key
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    return key.public_key()


async def _publish(
    http: httpx.AsyncClient, component: str, version: str, payload: bytes = PAYLOAD
) -> dict[str, Any]:
    r = await http.put(f"/api/v1/fleet/packages/{component}/{version}", content=payload)
    assert r.status_code == 201, r.text
    r = await http.get(f"/api/v1/fleet/packages/{component}/{version}/install-args")
    return r.json()  # type: ignore[no-any-return]


async def test_interrupted_download_resumes_with_a_range_request(
    tmp_path: Path, secured: tuple[Broker, CloudProcess]
) -> None:
    _, cloud = secured
    events: list[tuple[str, dict[str, Any]]] = []
    cut = _CutAfter(300_000)
    async with cloud.client() as http:
        args = await _publish(http, "model.face", "2.0")
    trust = _trust(tmp_path)
    ota = Ota(
        tmp_path / "term",
        trust,
        lambda kind, data: events.append((kind, data)) or 0,
        http=lambda: httpx.AsyncClient(transport=cut, timeout=10),
    )
    with pytest.raises(ValueError, match="interrupted"):
        await ota.install(args)
    part = tmp_path / "term" / "ota" / "downloads" / "model.face-2.0.part"
    assert 0 < part.stat().st_size < len(PAYLOAD)
    kept = part.stat().st_size
    result = await ota.install(args)
    assert result == {"component": "model.face", "version": "2.0", "slot": "b"}
    assert cut.ranges == [None, f"bytes={kept}-"]
    assert ota.last_fetched == len(PAYLOAD) - kept  # only the rest came over the wire
    assert (ota.slot_dir("model.face", "b") / "payload").read_bytes() == PAYLOAD
    states = [d["state"] for k, d in events if k == "ota_progress"]
    assert states[-2:] == ["installed", "healthy"] and "download_interrupted" in states
    assert any(d.get("pct") == 100.0 for _, d in events)


async def test_failed_health_check_rolls_back_to_the_old_slot(
    tmp_path: Path, secured: tuple[Broker, CloudProcess]
) -> None:
    _, cloud = secured
    async with cloud.client() as http:
        args = await _publish(http, "model.ocr", "1.1")
    trust = _trust(tmp_path)

    async def unhealthy(component: str, slot: Path) -> bool:
        return False

    ota = Ota(tmp_path / "term", trust, lambda k, d: 0, health=unhealthy)
    with pytest.raises(ValueError, match="rolled back to slot a"):
        await ota.install(args)
    assert ota.slots("model.ocr").active == "a"


async def test_a_bad_signature_or_an_adapter_nothing_would_load_installs_nothing(
    tmp_path: Path, secured: tuple[Broker, CloudProcess]
) -> None:
    _, cloud = secured
    tid = new_id("OTA")
    agent = await _enrolled_agent(tmp_path, cloud, tid)
    runner = Agents(tmp_path, 0)
    runner.running[tid] = (agent, asyncio.create_task(agent.run()))
    try:
        async with cloud.client() as http:
            camera = adapter_package("camera", "cam", {"cam.py": b"def build(c): ...\n"})
            good = await _publish(http, "adapter.camera", "3.0", camera)
            forged_key = ed25519.Ed25519PrivateKey.generate()
            manifest = base64.b64decode(good["manifest"])
            bad = {
                **good,
                "signature": base64.b64encode(
                    package.sign(forged_key, package.Manifest.parse(manifest))
                ).decode(),
            }

            async def run(args: dict[str, Any]) -> dict[str, Any]:
                body = {"name": "ota_install", "terminals": [tid], "args": args}
                cid = (await http.post("/api/v1/fleet/commands", json=body)).json()["commands"][0]

                async def final() -> dict[str, Any] | None:
                    c = (await http.get(f"/api/v1/fleet/commands/{cid}")).json()
                    return c if c["state"] not in ("queued", "sent") else None

                return await eventually(final, timeout=20)

            refused = await run(bad)
            assert refused["state"] == "failed" and "bad_signature" in refused["result"]["error"]
            assert not (tmp_path / tid / "ota" / "slots").exists()
            assert not (tmp_path / tid / "ota" / "downloads").exists()  # not even downloaded

            # Signed and whole, but this terminal has no camera: no driver slot for it.
            unused = await run({"component": "adapter.camera", "version": "3.0"})
            assert unused["state"] == "failed", unused
            assert "not_configured" in unused["result"]["error"], unused
            assert agent.ota.slots("adapter.camera") == ota_slots.Slots()
            # A kind of device no driver exists for: refused before any download.
            scanner = await _publish(http, "adapter.scanner", "1.0")
            unknown = await run(scanner)
            assert "nothing on this terminal loads" in unknown["result"]["error"], unknown
            assert not (tmp_path / tid / "ota" / "slots").exists()

            async def progress() -> list[str] | None:
                r = await http.get(f"/api/v1/terminals/{tid}/events")
                states = [e["data"]["state"] for e in r.json() if e["type"] == "ota_progress"]
                return states if states.count("refused") == 3 else None

            states = await eventually(progress)
            assert "installed" not in states and "healthy" not in states
    finally:
        await runner.stop(tid)
