"""Device-management commands on the terminal (the MDM functions banks ask for).

Configuration and shadow deltas, the customer screen lock, wiping local customer data,
log collection, reboot and agent restart (the peripheral self-test is the agent's own
``peripheral_selftest``). State that must survive
a restart (configuration, lock) lives in small JSON files in the agent's state folder,
written atomically. Power actions run through an injected callable after the reply has had
time to leave, so the cloud's command record closes before the terminal goes away.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common.wire.shadow import merge
from edge.commands import Handler

LOG_TAIL_BYTES = 8 * 1024
POWER_DELAY_S = 1.0


def _read(path: Path, default: dict[str, Any]) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())  # type: ignore[no-any-return]
    except (FileNotFoundError, json.JSONDecodeError):
        return dict(default)


def _write(path: Path, obj: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, ensure_ascii=False))
    os.replace(tmp, path)  # a crash leaves the old file or the new one, never half of one


class Mdm:
    def __init__(
        self,
        state_dir: Path,
        power: Callable[[str], None],
    ) -> None:
        self.dir = state_dir
        self.power = power
        self.config_path = state_dir / "config.json"
        self.screen_path = state_dir / "screen.json"
        #: Customer data the wipe command removes (cached ID photos, receipts, recordings).
        self.data_dir = state_dir / "data"
        self.log_dir = state_dir / "logs"

    def table(self) -> dict[str, Handler]:
        return {
            "shadow_delta": self.shadow_delta,
            "set_config": self.set_config,
            "lock_screen": self.lock_screen,
            "unlock_screen": self.unlock_screen,
            "wipe": self.wipe,
            "collect_logs": self.collect_logs,
            "reboot": self.reboot,
            "restart_agent": self.restart_agent,
        }

    # --- configuration -------------------------------------------------------------------

    @property
    def config(self) -> dict[str, Any]:
        return _read(self.config_path, {"version": 0, "state": {}})

    async def shadow_delta(self, args: dict[str, Any]) -> dict[str, Any]:
        version, delta = args["version"], args["delta"]
        if not isinstance(version, int) or not isinstance(delta, dict):
            raise ValueError("shadow_delta needs an integer version and an object delta")
        current = self.config
        if version >= current["version"]:
            current = {"version": version, "state": merge(current["state"], delta)}
            _write(self.config_path, current)
        return {"version": current["version"], "reported": current["state"]}

    async def set_config(self, args: dict[str, Any]) -> dict[str, Any]:
        patch = args["config"]
        if not isinstance(patch, dict):
            raise ValueError("set_config needs a config object")
        current = self.config
        current["state"] = merge(current["state"], patch)
        _write(self.config_path, current)
        return {"version": current["version"], "reported": current["state"]}

    # --- customer screen -----------------------------------------------------------------

    @property
    def screen(self) -> dict[str, Any]:
        return _read(self.screen_path, {"locked": False, "message": ""})

    async def lock_screen(self, args: dict[str, Any]) -> dict[str, Any]:
        message = str(args.get("message", "暂停服务 Out of service"))[:200]
        _write(self.screen_path, {"locked": True, "message": message})
        return self.screen

    async def unlock_screen(self, args: dict[str, Any]) -> dict[str, Any]:
        _write(self.screen_path, {"locked": False, "message": ""})
        return self.screen

    # --- data and logs -----------------------------------------------------------------

    async def wipe(self, args: dict[str, Any]) -> dict[str, Any]:
        """Remove local customer data and configuration; identity stays so it can report."""

        def remove() -> tuple[int, int]:
            files = size = 0
            if self.data_dir.exists():
                for p in self.data_dir.rglob("*"):
                    if p.is_file():
                        files, size = files + 1, size + p.stat().st_size
                shutil.rmtree(self.data_dir)
            for p in (self.config_path, self.screen_path):
                if p.exists():
                    files, size = files + 1, size + p.stat().st_size
                    p.unlink()
            self.data_dir.mkdir(parents=True)
            return files, size

        files, size = await asyncio.to_thread(remove)
        return {"wiped_files": files, "wiped_bytes": size}

    async def collect_logs(self, args: dict[str, Any]) -> dict[str, Any]:
        limit = min(int(args.get("max_bytes", LOG_TAIL_BYTES)), LOG_TAIL_BYTES)

        def tails() -> dict[str, str]:
            out: dict[str, str] = {}
            for p in sorted(self.log_dir.glob("*.log")) if self.log_dir.exists() else []:
                with p.open("rb") as f:
                    f.seek(max(0, p.stat().st_size - limit))
                    out[p.name] = f.read().decode(errors="replace")
            return out

        return {"logs": await asyncio.to_thread(tails)}

    # --- power ---------------------------------------------------------------------------

    def _later(self, action: str) -> dict[str, Any]:
        asyncio.get_running_loop().call_later(POWER_DELAY_S, self.power, action)
        return {"scheduled": action, "in_s": POWER_DELAY_S}

    async def reboot(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._later("reboot")

    async def restart_agent(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._later("restart_agent")
