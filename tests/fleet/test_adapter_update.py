"""Adapter packages over the air on a real agent: an ``adapter.idcard`` rollout installs the
driver into a slot, the restarted agent loads it, drives the simulated reader with it (its
own self-test words come back over MQTT) and reports its version; a driver whose self-test
fails goes back to the previous one by itself.

The terminal is a real ``edge.launcher`` process under ``cuntong.supervisor``, enrolled over
mTLS with the real cloud and broker; the reader is the serial simulator on a pty. The
packages are built by ``fleet.agent_release.adapter_package``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cuntong.servers.mosquitto import Broker
from edge import adapter_slots
from edge.ota import read_slots
from firmware_adapters.idcard.simulator import IdCardSimulator, sample_card
from firmware_adapters.pty_server import PtyServer
from fleet.agent_release import adapter_package
from tests.fleet.launched import Terminals, online_with, rollout, start_group
from tests.helpers import CloudProcess, eventually

#: Driver 2.0: a package (a folder with a relative import) whose self-test says who it is.
GOOD = {
    "idreader/__init__.py": b"from .reader import build\n\n__all__ = ['build']\n",
    "idreader/reader.py": b"""
from dataclasses import replace

from firmware_adapters.idcard.adapter import IdCardReader

DRIVER = "2.0"


class Reader(IdCardReader):
    async def self_test(self):
        result = await super().self_test()
        return replace(result, detail=f"{result.detail} (driver {DRIVER})")


def build(config):
    return Reader(config.name, config.port, config.baudrate, config.timeout)
""",
}

#: Driver 3.0: one module that misreads the reader's status, so its self-test fails.
BROKEN = {
    "idreader.py": b"""
import time

from firmware_adapters.idcard.adapter import IdCardReader


class Reader(IdCardReader):
    async def self_test(self):
        started = time.perf_counter()
        try:
            await self.transact("status", expect=(0x91,))
        except Exception as err:
            return self.result(False, f"driver 3.0: {err}", started)
        return self.result(True, "driver 3.0", started)


def build(config):
    return Reader(config.name, config.port, config.baudrate, config.timeout)
""",
}


@pytest.fixture
async def terminals(tmp_path: Path) -> AsyncIterator[Terminals]:
    t = Terminals(tmp_path / "terms")
    try:
        yield t
    finally:
        t.stop()


async def _selftest(http: httpx.AsyncClient, tid: str) -> dict[str, Any]:
    body = {"name": "peripheral_selftest", "terminals": [tid], "args": {}}
    cid = (await http.post("/api/v1/fleet/commands", json=body)).json()["commands"][0]

    async def final() -> dict[str, Any] | None:
        c = (await http.get(f"/api/v1/fleet/commands/{cid}")).json()
        return c if c["state"] not in ("queued", "sent") else None

    done = await eventually(final, timeout=30)
    assert done["state"] == "succeeded", done
    return done["result"]  # type: ignore[no-any-return]


async def test_an_adapter_package_is_loaded_tried_and_a_broken_one_goes_back(
    secured: tuple[Broker, CloudProcess], terminals: Terminals, tmp_path: Path
) -> None:
    _, cloud = secured
    reader = PtyServer(IdCardSimulator([sample_card(0)]), tmp_path / "idcard.tty")
    config = tmp_path / "peripherals.json"
    config.write_text(json.dumps({"id_reader": {"kind": "idcard", "port": str(reader.link)}}))
    devices = {"CUNTONG_AGENT_PERIPHERALS_FILE": str(config)}
    comp = "adapter.idcard"
    with reader:
        async with cloud.client() as http:
            for version, files in [("2.0", GOOD), ("3.0", BROKEN)]:
                payload = adapter_package("idcard", "idreader", files)
                r = await http.put(f"/api/v1/fleet/packages/{comp}/{version}", content=payload)
                assert r.status_code == 201, r.text
            pinpad = adapter_package("pinpad", "pinpad_driver", {"pinpad_driver.py": b""})
            r = await http.put("/api/v1/fleet/packages/adapter.pinpad/1.0", content=pinpad)
            assert r.status_code == 201, r.text
            prefix, (tid,) = await start_group(http, terminals, cloud, 1, devices)
            group = prefix.lower()
            state = terminals.root / tid
            before = await _selftest(http, tid)
            assert before["passed"] and "driver" not in before["results"][0]["detail"]

            done = await rollout(http, group, "2.0", {"canary": 1}, component=comp)
            assert done["phase"] == "succeeded", (done["reason"], done["waves"])
            # The fleet sees the driver's version, and the reader answers the new code.
            await eventually(lambda: online_with(http, prefix, "2.0", 1, comp), timeout=30)
            after = await _selftest(http, tid)
            assert after["passed"], after
            assert after["results"][0]["detail"] == "SAM status ok (driver 2.0)"
            slots = read_slots(state, comp)
            assert (slots.active, slots.trial, slots.versions) == ("b", False, {"b": "2.0"})

            # 3.0 fails its self-test on trial: back on 2.0 by itself, the rollout fails.
            broken = await rollout(http, group, "3.0", {"canary": 1}, component=comp)
            assert broken["phase"] in ("aborted", "rolled_back"), broken
            await eventually(lambda: online_with(http, prefix, "2.0", 1, comp), timeout=30)
            again = await _selftest(http, tid)
            assert again["results"][0]["detail"] == "SAM status ok (driver 2.0)"

            # A device this terminal does not have: refused, nothing installed.
            none = await rollout(http, group, "1.0", {"canary": 1}, component="adapter.pinpad")
            assert none["phase"] in ("aborted", "rolled_back"), none
            events = (await http.get(f"/api/v1/terminals/{tid}/events")).json()
    slots = read_slots(state, comp)
    assert (slots.active, slots.trial) == ("b", False)
    assert slots.versions == {"a": "3.0", "b": "2.0"}
    assert adapter_slots.components(state) == [comp]  # no pinpad slot
    progress = [e["data"] for e in events if e["type"] == "ota_progress"]
    healthy = [p["version"] for p in progress if p["state"] == "healthy"]
    assert healthy == ["2.0"], progress
    rolled = [p for p in progress if p["state"] == "rolled_back"]
    assert {p["version"] for p in rolled} == {"3.0"}, rolled
    assert any("driver 3.0" in p["detail"] for p in rolled), rolled  # the self-test's words
    refused = [p for p in progress if p["state"] == "refused"]
    assert [(p["component"], p["reason"]) for p in refused] == [
        ("adapter.pinpad", "not_configured")
    ]
