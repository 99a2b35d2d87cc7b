"""The identity-gateway simulator (`python -m idcheck.simulator`) as a child process.

The tests start it with `IdentityGateway.start()`; `cuntong up` runs the same command
(`argv()`) as a supervised child over `demo_identities()` with a key kept under its state
folder (`gateway_key`), and points the cloud's `idcheck` client at it.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from common import procs
from firmware_adapters.idcard.simulator import sample_card


def demo_identities() -> list[dict[str, str]]:
    """The citizen records the demo gateway knows: 王美娜 and 张建国 are on record and
    match; 李秀英 (``sample_card(2)``) is registered deceased. Any other number is "not
    found"; a known number with another name is a name mismatch. SX-00001's simulated
    reader holds a card for each (``cuntong.demoid``)."""
    cards = [sample_card(i) for i in range(3)]
    return [
        {"id_number": c.text.id_number, "name": c.text.name, "status": status}
        for c, status in zip(cards, ("normal", "normal", "deceased"), strict=True)
    ]


def gateway_key(folder: Path) -> bytes:
    """The cloud's shared key with the gateway: made once, kept 0600 in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "gateway.key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32))
    return path.read_bytes().strip()


@dataclass
class IdentityGateway:
    """Writes the identities and key under `work_dir`, starts the simulator, stops it."""

    port: int
    work_dir: Path
    key: bytes
    identities: list[dict[str, str]] = field(default_factory=list)
    host: str = "127.0.0.1"
    hang_s: float = 60.0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> IdentityGateway:
        self.proc = procs.start(self.argv(), self.work_dir / "idcheck.log")
        procs.wait_for_port(self.port, self.host, timeout, self.proc)
        return self

    def argv(self) -> list[str]:
        """Write the identities and key under ``work_dir``; the command that serves them."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        ids = self.work_dir / "identities.json"
        ids.write_text(json.dumps(self.identities, ensure_ascii=False), encoding="utf-8")
        key_file = self.work_dir / "gateway.key"
        if not key_file.exists() or key_file.read_bytes().strip() != self.key:
            key_file.write_bytes(self.key)
        key_file.chmod(0o600)
        return [
            sys.executable,
            "-m",
            "idcheck.simulator",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--identities",
            str(ids),
            "--key-file",
            str(key_file),
            "--hang-s",
            str(self.hang_s),
        ]

    def set_mode(self, mode: str) -> None:
        """'up', 'down' (503) or 'hang' (hold each request, then 503)."""
        httpx.post(f"{self.url}/admin/mode", json={"mode": mode}, timeout=5).raise_for_status()

    def stop(self) -> None:
        if self.proc is not None:
            procs.stop(self.proc)
            self.proc = None
