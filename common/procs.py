"""Child-process helpers shared by the stack launcher, the benchmarks and the test fixtures.

Each server the system needs (Mosquitto, VictoriaMetrics, PostgreSQL, the cloud API, agents)
runs as a child process with a config file generated under a state folder. These helpers
find the binary (with a one-line hint when it is missing), pick free loopback ports, wait for
a port to answer and stop processes politely, then firmly.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from common.errors import MissingBinary

#: How to get each server binary on Debian, for the one-line error when it is missing.
INSTALL_HINTS: dict[str, str] = {
    "mosquitto": "apt-get install mosquitto (or run scripts/install.sh)",
    "victoria-metrics": "apt-get install victoria-metrics (or run scripts/install.sh)",
    "initdb": "apt-get install postgresql (or run scripts/install.sh)",
    "postgres": "apt-get install postgresql (or run scripts/install.sh)",
    "pg_isready": "apt-get install postgresql (or run scripts/install.sh)",
    "janus": "apt-get install janus (or run scripts/install.sh)",
    "turnserver": "apt-get install coturn (or run scripts/install.sh)",
    "mosquitto_pub": "apt-get install mosquitto-clients (or run scripts/install.sh)",
    "softhsm2-util": "apt-get install softhsm2 (or run scripts/install.sh)",
}

_EXTRA_DIRS = ("/usr/sbin", "/usr/local/sbin", "/usr/lib/postgresql/15/bin")


def find_binary(name: str) -> str:
    """Absolute path of a server program, or MissingBinary saying how to install it."""
    search = os.pathsep.join([os.environ.get("PATH", ""), *_EXTRA_DIRS])
    path = shutil.which(name, path=search)
    if path is None:
        hint = INSTALL_HINTS.get(name, f"install the package that provides {name}")
        raise MissingBinary(f"{name} not found: {hint}")
    return path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    port: int,
    host: str = "127.0.0.1",
    timeout: float = 15.0,
    proc: subprocess.Popen[bytes] | None = None,
) -> None:
    """Block until something accepts TCP connections on the port (or the process died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} before listening")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


def start(
    argv: Sequence[str],
    log_path: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start a child in its own process group, output appended to a log file."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )


def stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> int:
    """SIGTERM the child's process group, SIGKILL it if it has not gone within timeout."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    return proc.returncode
