"""The core-banking simulator as a child process with its own SQLite database.

`CoreBankServer(port, state_dir).start()` writes a random bearer secret to STATE/core.secret
(0600), starts `python -m corebank.simulator` on the database STATE/core.sqlite3 and waits for
/healthz. `faults=True` (tests) offers the lost-answer switch.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from common import procs


@dataclass
class CoreBankServer:
    port: int
    state_dir: Path
    faults: bool = False
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def secret(self) -> str:
        return (self.state_dir / "core.secret").read_text().strip()

    def start(self, timeout: float = 30.0) -> CoreBankServer:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        secret_file = self.state_dir / "core.secret"
        if not secret_file.exists():
            fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(32))
        argv = [sys.executable, "-m", "corebank.simulator", "--db",
                str(self.state_dir / "core.sqlite3"), "--port", str(self.port),
                "--secret-file", str(secret_file)]  # fmt: skip
        if self.faults:
            argv.append("--faults")
        log = self.state_dir / "corebank.log"
        self.proc = procs.start(argv, log)
        procs.wait_healthy(f"{self.url}/healthz", self.proc, log, "core simulator", timeout)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            procs.stop(self.proc)
            self.proc = None
