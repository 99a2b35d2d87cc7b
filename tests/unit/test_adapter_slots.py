"""Adapter slots without processes: what a package may hold, loading the active slot's
driver, and going back when a driver on trial does not load or keeps the agent down."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.wire.package import PackageRefused
from edge import adapter_slots, ota_slots
from edge.ota import read_slots, save_slots, slot_dir
from firmware_adapters.registry import PeripheralConfig
from fleet.agent_release import adapter_package

COMP = "adapter.camera"


def _driver(tag: str) -> bytes:
    return (
        "from firmware_adapters.camera.adapter import Camera\n\n"
        "class Driver(Camera):\n"
        f"    tag = {tag!r}\n\n"
        "def build(c):\n"
        "    return Driver(c.name, c.device, c.width, c.height, c.fps)\n"
    ).encode()


def _install(state: Path, version: str, files: dict[str, bytes]) -> None:
    """What ``edge.ota`` does for a component with ``unpack``: inactive slot, on trial."""
    before = read_slots(state, COMP)
    payload = state / "payload.zip"
    payload.parent.mkdir(parents=True, exist_ok=True)
    payload.write_bytes(adapter_package("camera", "cam", files))
    target = slot_dir(state, COMP, before.inactive)
    target.mkdir(parents=True, exist_ok=True)
    adapter_slots.unpacker("camera")(payload, target)
    save_slots(state, COMP, ota_slots.switch(before, version, trial_until=100.0))


def _tag(loaded: adapter_slots.Loaded) -> str:
    adapter = loaded.builders["camera"](PeripheralConfig("cam0", "camera"))
    return str(adapter.tag)  # type: ignore[attr-defined]


def test_a_package_must_be_for_its_kind_and_stay_in_its_module(tmp_path: Path) -> None:
    payload = tmp_path / "p.zip"
    payload.write_bytes(adapter_package("camera", "cam", {"cam.py": b""}))
    assert adapter_slots.check(payload, "camera") == adapter_slots.Index("camera", "cam")
    with pytest.raises(PackageRefused, match="wrong_kind"):
        adapter_slots.check(payload, "idcard")
    with pytest.raises(ValueError, match="outside"):
        adapter_package("camera", "cam", {"edge/agent.py": b""})
    payload.write_bytes(b"not a zip")
    with pytest.raises(PackageRefused, match="not_an_adapter"):
        adapter_slots.check(payload, "camera")


def test_the_active_slot_loads_and_one_that_does_not_import_on_trial_goes_back(
    tmp_path: Path,
) -> None:
    assert adapter_slots.load(tmp_path).builders == {}  # nothing installed: built-in drivers
    _install(tmp_path, "2.0", {"cam/__init__.py": _driver("two")})
    loaded = adapter_slots.load(tmp_path)
    assert loaded.versions == {COMP: "2.0"} and _tag(loaded) == "two"
    save_slots(tmp_path, COMP, ota_slots.commit(read_slots(tmp_path, COMP)))

    _install(tmp_path, "3.0", {"cam.py": b"raise RuntimeError('3.0 breaks on import')\n"})
    loaded = adapter_slots.load(tmp_path)
    assert loaded.failed == [(COMP, "3.0", "RuntimeError: 3.0 breaks on import")]
    assert loaded.versions == {COMP: "2.0"} and _tag(loaded) == "two"
    assert read_slots(tmp_path, COMP).active == "b" and not read_slots(tmp_path, COMP).trial


def test_an_adapter_that_keeps_the_agent_down_goes_back_on_the_next_start(
    tmp_path: Path,
) -> None:
    _install(tmp_path, "2.0", {"cam.py": _driver("two")})
    assert adapter_slots.prepare(tmp_path, now=10.0) == []  # the first start on trial
    assert adapter_slots.prepare(tmp_path, now=20.0) == [(COMP, "2.0")]  # started again
    s = read_slots(tmp_path, COMP)
    assert (s.active, s.trial) == ("a", False)
    assert adapter_slots.load(tmp_path).builders == {}  # slot a: the built-in driver
