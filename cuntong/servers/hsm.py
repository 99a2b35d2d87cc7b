"""The HSM service as a child process, over a SoftHSM2 token in its own state folder.

`HsmServer(port, state_dir).start()` writes STATE/softhsm2.conf (tokens under STATE/tokens),
initialises the token with softhsm2-util on first start, writes the bearer secret and the
token PIN as 0600 files, starts `python -m hsm.service` with SOFTHSM2_CONF pointing there and
waits for /healthz. The secret and PIN are random per state folder.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from common import procs


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)


@dataclass
class HsmServer:
    port: int
    state_dir: Path
    label: str = "cuntong"
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def secret(self) -> str:
        return (self.state_dir / "hsm.secret").read_text().strip()

    @property
    def conf(self) -> Path:
        return self.state_dir / "softhsm2.conf"

    def init_token(self) -> None:
        """softhsm2-util --init-token, once per state folder."""
        tokens = self.state_dir / "tokens"
        if tokens.exists() and any(tokens.iterdir()):
            return
        tokens.mkdir(parents=True, exist_ok=True)
        os.chmod(self.state_dir, 0o700)
        self.conf.write_text(
            f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n"
        )
        pin, so_pin = secrets.token_hex(8), secrets.token_hex(8)
        _write_private(self.state_dir / "token.pin", pin)
        _write_private(self.state_dir / "hsm.secret", secrets.token_urlsafe(32))
        argv = [procs.find_binary("softhsm2-util"), "--init-token", "--free",
                "--label", self.label, "--pin", pin, "--so-pin", so_pin]  # fmt: skip
        env = {**os.environ, "SOFTHSM2_CONF": str(self.conf)}
        subprocess.run(argv, env=env, check=True, capture_output=True, timeout=60)

    def start(self, timeout: float = 30.0) -> HsmServer:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.init_token()
        env = {**os.environ, "SOFTHSM2_CONF": str(self.conf)}
        argv = [sys.executable, "-m", "hsm.service", "--state-dir", str(self.state_dir),
                "--port", str(self.port), "--token-label", self.label]  # fmt: skip
        log = self.state_dir / "hsm.log"
        self.proc = procs.start(argv, log, env=env)
        procs.wait_healthy(f"{self.url}/healthz", self.proc, log, "HSM service", timeout)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            procs.stop(self.proc)
            self.proc = None
