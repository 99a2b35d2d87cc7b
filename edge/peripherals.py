"""The terminal's devices as the agent sees them: configured adapters, or the simulator.

With ``peripherals_file`` (JSON, the ``firmware_adapters.registry`` format) the agent drives
the real adapters (serial ID reader and PIN pad, PC/SC IC card, V4L2 camera, or their
simulators on pseudo-terminals); otherwise, in simulation, ``SimulatedTerminal`` stands in.
Health states go into every telemetry sample; the ``peripheral_selftest`` command runs each
device's self-test. A terminal that is not simulated and has no camera configured reports
``camera: fault`` (a teller call needs one; nothing stands in for it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from edge.simulation import SimulatedTerminal
from firmware_adapters.base import Adapter
from firmware_adapters.errors import PeripheralError
from firmware_adapters.registry import PeripheralConfig, build_adapters, health, states

log = logging.getLogger("cuntong.peripherals")

#: The name a missing camera is reported under.
MISSING_CAMERA = "camera"


class Peripherals:
    def __init__(self, adapters: dict[str, Adapter], sim: SimulatedTerminal | None) -> None:
        self.adapters = adapters
        self.sim = sim

    @classmethod
    def from_config(
        cls,
        path: Path | None,
        sim: SimulatedTerminal | None,
        builders: Mapping[str, Callable[[PeripheralConfig], Adapter]] | None = None,
    ) -> Peripherals:
        """``builders``: drivers by kind that replace the built-in ones (``edge.adapter_slots``)."""
        adapters = build_adapters(json.loads(path.read_text()), builders) if path else {}
        return cls(adapters, sim)

    def kinds(self) -> set[str]:
        return {a.kind for a in self.adapters.values()}

    async def self_test_kind(self, kind: str) -> list[dict[str, Any]]:
        """The self-test of the devices of one kind (an adapter package on trial)."""
        chosen = [a for a in self.adapters.values() if a.kind == kind]
        return [asdict(r) for r in await asyncio.gather(*(a.self_test() for a in chosen))]

    async def open(self) -> None:
        for adapter in self.adapters.values():
            try:
                await adapter.open()
            except PeripheralError as err:
                # Unplugged at boot is a state to report, not a reason to stay down.
                log.warning("peripheral %s not available: %s", adapter.name, err)

    async def close(self) -> None:
        for adapter in self.adapters.values():
            with contextlib.suppress(PeripheralError):
                await adapter.close()

    def states(self) -> dict[str, str]:
        if self.sim is not None and not self.adapters:
            return self.sim.peripheral_states()
        found = states(self.adapters) if self.adapters else {}
        if self.sim is None and not self.camera_configured():
            found[MISSING_CAMERA] = "fault"
        return found

    def camera_configured(self) -> bool:
        return any(a.kind == "camera" for a in self.adapters.values())

    def fault_counts(self) -> dict[str, int]:
        """Faults per configured device since start (for telemetry; none when simulated)."""
        return {name: a.health().faults for name, a in self.adapters.items()}

    def details(self) -> dict[str, Any]:
        return health(self.adapters) if self.adapters else {}

    async def self_test(self) -> list[dict[str, Any]]:
        if self.sim is not None and not self.adapters:
            return [
                {"name": name, "kind": "simulated", "passed": state == "ok", "detail": state}
                for name, state in self.states().items()
            ]
        results = await asyncio.gather(*(a.self_test() for a in self.adapters.values()))
        out = [asdict(r) for r in results]
        if self.sim is None and not self.camera_configured():
            out.append(
                {
                    "name": MISSING_CAMERA,
                    "kind": "camera",
                    "passed": False,
                    "detail": "no camera configured",
                    "latency_ms": 0.0,
                }
            )
        return out
