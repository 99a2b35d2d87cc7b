"""The identity-gateway simulator (`python -m idcheck.simulator`) as a child process."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from common import procs


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
        self.work_dir.mkdir(parents=True, exist_ok=True)
        ids = self.work_dir / "identities.json"
        ids.write_text(json.dumps(self.identities, ensure_ascii=False), encoding="utf-8")
        key_file = self.work_dir / "gateway.key"
        key_file.write_bytes(self.key)
        key_file.chmod(0o600)
        argv = [
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
        self.proc = procs.start(argv, self.work_dir / "idcheck.log")
        procs.wait_for_port(self.port, self.host, timeout, self.proc)
        return self

    def set_mode(self, mode: str) -> None:
        """'up', 'down' (503) or 'hang' (hold each request, then 503)."""
        httpx.post(f"{self.url}/admin/mode", json={"mode": mode}, timeout=5).raise_for_status()

    def stop(self) -> None:
        if self.proc is not None:
            procs.stop(self.proc)
            self.proc = None
