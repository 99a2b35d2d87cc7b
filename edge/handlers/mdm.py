"""Device-management commands on the terminal (the MDM functions banks ask for).

Live configuration (shadow deltas, checked against ``common.wire.live_config`` and applied
without a restart), the customer screen lock, wiping what the terminal keeps about
customers, log collection, reboot and agent restart (the peripheral self-test is the
agent's own ``peripheral_selftest``). State that must survive a restart (configuration,
lock) lives in small JSON files in the agent's state folder, written atomically. Power
actions run through an injected callable after the reply has had time to leave, so the
cloud's command record closes before the terminal goes away.

What ``wipe`` removes (docs/terminal.md, "What the terminal keeps about customers"):
delivered business events still readable in the spool file or its write-ahead log (and,
with ``drop_pending``, events not yet delivered), the ``data/`` folder (document photos
and receipts cached for a call), and the agent's logs. Configuration, the screen lock,
the identity and OTA slots stay: they hold nothing about customers.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common.wire import live_config
from common.wire import log_upload as upload_wire
from common.wire.shadow import merge
from edge import log_upload, logs
from edge.commands import Handler

#: The argument the agent adds to a verified ``collect_logs``: the signed command's id, which
#: names the upload (the cloud takes one only while that command is open).
COMMAND_ID = "command_id"
#: The most a collect_logs bundle carries (it travels in one MQTT reply).
LOG_BUNDLE_MAX_BYTES = 64 * 1024
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
        apply: Callable[[live_config.LiveConfig], None] = lambda config: None,
        wipe_spool: Callable[[bool], int] = lambda drop_pending: 0,
        uploader: Callable[[], log_upload.Uploader] | None = None,
    ) -> None:
        self.dir = state_dir
        self.power = power
        self.apply = apply
        self.wipe_spool = wipe_spool
        #: Where ``collect_logs`` with ``upload`` sends the bundle (None: not enrolled).
        self.uploader = uploader
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

    def live(self) -> live_config.LiveConfig:
        """The stored configuration as checked at the time it was applied."""
        return live_config.check(self.config["state"])

    def _accept(self, version: int, state: dict[str, Any]) -> dict[str, Any]:
        config = live_config.check(state)  # InvalidConfig (a ValueError) names the field
        self.apply(config)
        reported = live_config.reported(config)
        _write(self.config_path, {"version": version, "state": reported})
        return {"version": version, "reported": reported}

    async def shadow_delta(self, args: dict[str, Any]) -> dict[str, Any]:
        version, delta = args["version"], args["delta"]
        if not isinstance(version, int) or not isinstance(delta, dict):
            raise ValueError("shadow_delta needs an integer version and an object delta")
        current = self.config
        if version < current["version"]:  # a stale delta: report what is applied
            return {"version": current["version"], "reported": current["state"]}
        return self._accept(version, merge(current["state"], delta))

    async def set_config(self, args: dict[str, Any]) -> dict[str, Any]:
        patch = args["config"]
        if not isinstance(patch, dict):
            raise ValueError("set_config needs a config object")
        current = self.config
        return self._accept(current["version"], merge(current["state"], patch))

    # --- customer screen -----------------------------------------------------------------

    @property
    def screen(self) -> dict[str, Any]:
        return _read(self.screen_path, {"locked": False, "message": ""})

    def set_screen(self, locked: bool, message: str) -> None:
        _write(self.screen_path, {"locked": locked, "message": message if locked else ""})

    async def lock_screen(self, args: dict[str, Any]) -> dict[str, Any]:
        message = str(args.get("message", "暂停服务 Out of service"))[:200]
        _write(self.screen_path, {"locked": True, "message": message})
        return self.screen

    async def unlock_screen(self, args: dict[str, Any]) -> dict[str, Any]:
        _write(self.screen_path, {"locked": False, "message": ""})
        return self.screen

    # --- data and logs -----------------------------------------------------------------

    async def wipe(self, args: dict[str, Any]) -> dict[str, Any]:
        """Remove what the terminal keeps about customers (see the module docstring)."""
        drop_pending = bool(args.get("drop_pending", False))

        def remove() -> dict[str, Any]:
            files = size = 0
            for folder in (self.data_dir, self.log_dir):
                if folder.exists():
                    for p in folder.rglob("*"):
                        if p.is_file():
                            files, size = files + 1, size + p.stat().st_size
            if self.data_dir.exists():
                shutil.rmtree(self.data_dir)
            self.data_dir.mkdir(parents=True)
            for p in logs.files(self.log_dir):
                # The live log is emptied in place (its handler keeps the file open).
                if p.name == logs.LOG_NAME:
                    with p.open("r+b") as f:
                        f.truncate(0)
                else:
                    p.unlink()
            rows = self.wipe_spool(drop_pending)
            return {"wiped_files": files, "wiped_bytes": size, "spool_rows_removed": rows}

        return await asyncio.to_thread(remove)

    async def collect_logs(self, args: dict[str, Any]) -> dict[str, Any]:
        """With ``upload``: every log file, redacted and compressed, uploaded over HTTPS in
        signed chunks that resume after a drop (``edge.log_upload``). Without: the newest
        redacted log lines in the reply, at most ``max_bytes`` (≤ 64 KiB)."""
        if args.get("upload"):
            return await self._upload_logs(args)
        limit = args.get("max_bytes", LOG_BUNDLE_MAX_BYTES)
        if not isinstance(limit, int) or limit <= 0:
            raise ValueError("max_bytes must be a positive integer")
        limit = min(limit, LOG_BUNDLE_MAX_BYTES)
        text, truncated = await asyncio.to_thread(logs.bundle, self.log_dir, limit)
        return {"log": text, "bytes": len(text.encode()), "truncated": truncated}

    async def _upload_logs(self, args: dict[str, Any]) -> dict[str, Any]:
        upload_id = args.get(COMMAND_ID)
        if self.uploader is None or not isinstance(upload_id, str):
            raise ValueError("log upload needs an enrolled terminal (secured mode, factory claim)")
        chunk = args.get("chunk_bytes", upload_wire.DEFAULT_CHUNK)
        if (
            not isinstance(chunk, int)
            or not upload_wire.MIN_CHUNK <= chunk <= upload_wire.MAX_CHUNK
        ):
            raise ValueError(
                f"chunk_bytes must be an integer {upload_wire.MIN_CHUNK}-{upload_wire.MAX_CHUNK}"
            )
        uploader = self.uploader()
        folder = self.data_dir / "log-uploads"
        made: dict[str, Any] = {}

        def make() -> bytes:
            data, made["text_bytes"], made["truncated"] = log_upload.bundle(self.log_dir)
            return data

        data = await asyncio.to_thread(log_upload.kept, folder, upload_id, make)
        result = await uploader.upload(upload_id, data, chunk)
        (folder / f"{upload_id}.tgz").unlink(missing_ok=True)  # the cloud holds it now
        return {**result, **made}

    # --- power ---------------------------------------------------------------------------

    def _later(self, action: str) -> dict[str, Any]:
        asyncio.get_running_loop().call_later(POWER_DELAY_S, self.power, action)
        return {"scheduled": action, "in_s": POWER_DELAY_S}

    async def reboot(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._later("reboot")

    async def restart_agent(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._later("restart_agent")
