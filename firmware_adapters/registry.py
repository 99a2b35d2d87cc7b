"""Builds the configured peripheral adapters from plain configuration, and reports health.

    adapters = build_adapters({
        "idcard": {"kind": "idcard", "port": "/dev/ttyUSB0", "baudrate": 115200},
        "pinpad": {"kind": "pinpad", "port": "/dev/ttyS1", "baudrate": 9600},
        "iccard": {"kind": "iccard", "reader": "Virtual PCD 00 00"},
        "camera": {"kind": "camera", "device": "/dev/video0", "fps": 15},
    })
    health(adapters)   # {"idcard": {"state": "ok", "faults": 0, ...}, ...}

`kind` defaults to the entry's name. Unknown kinds or fields raise ConfigError, so a terminal
with a bad configuration refuses to start instead of failing at the first customer.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from common.errors import ConfigError
from firmware_adapters.base import Adapter


@dataclass(frozen=True)
class PeripheralConfig:
    """One configured device; unused fields are ignored by the other kinds."""

    name: str
    kind: str
    port: str | None = None
    baudrate: int | None = None
    timeout: float = 1.5
    reader: str = ""
    device: str = "synthetic"
    width: int = 640
    height: int = 480
    fps: int = 15
    enabled: bool = True
    #: ID reader: who decodes the card photo's WLT (``firmware_adapters/idcard/photo.py``):
    #: "" none (no photo, so no face match), "simulator" (the simulated reader's JPEG), or
    #: "package.module:Class" (a terminal image's wrapper of the vendor library).
    photo_decoder: str = ""


def _idcard(c: PeripheralConfig) -> Adapter:
    from firmware_adapters.idcard.adapter import IdCardReader

    return IdCardReader(c.name, _need_port(c), c.baudrate, c.timeout, wlt_decoder=_photo_decoder(c))


def _photo_decoder(c: PeripheralConfig) -> Any:
    if not c.photo_decoder:
        return None
    if c.photo_decoder == "simulator":
        from firmware_adapters.idcard.photo import SimulatorPhotoDecoder

        return SimulatorPhotoDecoder()
    module, _, attr = c.photo_decoder.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)()
    except (ImportError, AttributeError, TypeError, ValueError) as err:
        raise ConfigError(
            f"peripheral {c.name!r}: photo_decoder {c.photo_decoder!r} is not usable "
            f'("simulator" or "package.module:Class"): {err}'
        ) from err


def _pinpad(c: PeripheralConfig) -> Adapter:
    from firmware_adapters.pinpad.adapter import PinPad

    return PinPad(c.name, _need_port(c), c.baudrate, c.timeout)


def _iccard(c: PeripheralConfig) -> Adapter:
    from firmware_adapters.iccard.adapter import IcCardReader  # pulls in pyscard

    return IcCardReader(c.name, c.reader)


def _camera(c: PeripheralConfig) -> Adapter:
    from firmware_adapters.camera.adapter import Camera

    return Camera(c.name, c.device, c.width, c.height, c.fps)


#: kind -> builder; adding a device kind is one row here
BUILDERS: dict[str, Callable[[PeripheralConfig], Adapter]] = {
    "idcard": _idcard,
    "pinpad": _pinpad,
    "iccard": _iccard,
    "camera": _camera,
}


def _need_port(c: PeripheralConfig) -> str:
    if not c.port:
        raise ConfigError(f"peripheral {c.name!r} ({c.kind}) needs a serial port")
    return c.port


def parse_config(config: Mapping[str, Mapping[str, Any]]) -> list[PeripheralConfig]:
    """Plain dict (e.g. from TOML / JSON) -> validated configs."""
    known = {f.name for f in dataclasses.fields(PeripheralConfig)} - {"name"}
    out = []
    for name, entry in config.items():
        unknown = set(entry) - known
        if unknown:
            raise ConfigError(f"peripheral {name!r}: unknown settings {sorted(unknown)}")
        cfg = PeripheralConfig(name=name, **{"kind": name, **entry})
        if cfg.kind not in BUILDERS:
            raise ConfigError(f"peripheral {name!r}: unknown kind {cfg.kind!r}")
        out.append(cfg)
    return out


def build_adapters(
    config: Mapping[str, Mapping[str, Any]] | list[PeripheralConfig],
    builders: Mapping[str, Callable[[PeripheralConfig], Adapter]] | None = None,
) -> dict[str, Adapter]:
    """The enabled adapters, by name (not opened yet); ``builders`` replaces the built-in
    driver of a kind (an adapter package the terminal installed over the air)."""
    configs = parse_config(config) if isinstance(config, Mapping) else config
    chosen = {**BUILDERS, **(builders or {})}
    return {c.name: chosen[c.kind](c) for c in configs if c.enabled}


def health(adapters: Mapping[str, Adapter]) -> dict[str, dict[str, object]]:
    """Each adapter's state ("ok", "degraded", "fault", "absent") and counters, for telemetry."""
    return {name: adapter.health().as_dict() for name, adapter in adapters.items()}


def states(adapters: Mapping[str, Adapter]) -> dict[str, str]:
    """Name -> health state only: the `peripherals` map of the agent's telemetry envelope."""
    return {name: adapter.health().state for name, adapter in adapters.items()}
