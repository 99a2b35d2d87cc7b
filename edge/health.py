"""Health sampling: what a terminal reports in each telemetry message.

Each metric is a row in a table: its name (one of ``common.envelope.TELEMETRY_FIELDS``) and
the function that reads it. Readings that the hardware cannot give (no temperature sensor in
a container) are left out rather than faked; the simulator supplies its own.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

_PROC = psutil.Process(os.getpid())
_BOOT = time.monotonic()


def _temperature() -> float | None:
    read = getattr(psutil, "sensors_temperatures", None)
    sensors = read() if read else {}
    for entries in sensors.values():
        for entry in entries:
            if entry.current:
                return float(entry.current)
    return None


def _disk_pct(path: Path) -> float:
    usage = shutil.disk_usage(path)
    return 100.0 * usage.used / usage.total


@dataclass
class HealthSampler:
    """Reads the terminal's health; ``extra`` lets the agent add link RTT and spool depth."""

    disk_path: Path
    extra: dict[str, Callable[[], float | None]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _PROC.cpu_percent(None)  # prime: the first reading is always 0
        self._readers: dict[str, Callable[[], float | None]] = {
            "cpu_pct": lambda: psutil.cpu_percent(None),
            "mem_pct": lambda: psutil.virtual_memory().percent,
            "agent_rss_mb": lambda: _PROC.memory_info().rss / 2**20,
            "disk_pct": lambda: _disk_pct(self.disk_path),
            "temp_c": _temperature,
            "uptime_s": lambda: time.monotonic() - _BOOT,
            **self.extra,
        }

    def sample(self) -> dict[str, float]:
        values = {name: read() for name, read in self._readers.items()}
        return {name: round(float(v), 3) for name, v in values.items() if v is not None}
