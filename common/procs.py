"""Child-process helpers shared by the stack launcher, the benchmarks and the test fixtures.

Each server the system needs (Mosquitto, VictoriaMetrics, PostgreSQL, the cloud API, agents)
runs as a child process with a config file generated under a state folder. These helpers
find the binary (with a one-line hint when it is missing), pick free loopback ports, wait for
a port to answer and stop processes politely, then firmly.

No orphans: each child runs in its own process group (so ``stop`` reaches whatever it forks)
and, on Linux, asks the kernel for SIGKILL when the thread that started it dies
(``PR_SET_PDEATHSIG``), so a launcher killed outright (SIGKILL, a crash, a CI runner giving
up) does not leave its servers running. The kernel ties that to the starting *thread*: a
child started off the main thread (``asyncio.to_thread``) would die when the worker thread
is retired, so only children started on the main thread get it; the others rely on ``stop``.
Grandchildren a server forks itself are reached by ``stop`` (same group), not by the
parent-death signal.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
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
    "pulseaudio": "apt-get install pulseaudio (or run scripts/install.sh)",
    "paplay": "apt-get install pulseaudio-utils (or run scripts/install.sh)",
    "parecord": "apt-get install pulseaudio-utils (or run scripts/install.sh)",
    "espeak-ng": "apt-get install espeak-ng (or run scripts/install.sh)",
}

_EXTRA_DIRS = ("/usr/sbin", "/usr/local/sbin", "/usr/lib/postgresql/15/bin")

log = logging.getLogger("cuntong.procs")

#: The exit status of a child that asks its supervisor to start it again now (EX_TEMPFAIL):
#: the agent after a reboot or restart_agent command. Not counted as a crash.
RESTART_EXIT = 75

_PR_SET_PDEATHSIG = 1
# Resolved once here: between fork and exec the child should only call, not load.
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


def find_binary(name: str) -> str:
    """Absolute path of a server program, or MissingBinary saying how to install it."""
    search = os.pathsep.join([os.environ.get("PATH", ""), *_EXTRA_DIRS])
    path = shutil.which(name, path=search)
    if path is None:
        hint = INSTALL_HINTS.get(name, f"install the package that provides {name}")
        raise MissingBinary(f"{name} not found: {hint}")
    return path


#: Where ``free_port`` looks: below the kernel's ephemeral range (32768-60999 by default,
#: where every outgoing connection takes its source port) and Janus's RTP range (20000-).
FREE_PORTS = (10000, 20000)
#: Ports this process handed out lately, not handed out again (a launcher picks several
#: before any is bound).
_recent: collections.deque[int] = collections.deque(maxlen=512)


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing on ``host`` holds for TCP or UDP, for a server started next.

    Picked at random below the ephemeral range: a port the kernel gave out (bind to 0) is
    in that range, so until the server binds it any outgoing connection on the machine
    can take it as its source port (seen in a full test run: a replica's own broker link
    took the port picked for its listener, "address already in use")."""
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(*FREE_PORTS)
        if port not in _recent and _bindable(host, port):
            _recent.append(port)
            return port
    with socket.socket() as sock:  # the range is full: any port the kernel gives
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _bindable(host: str, port: int) -> bool:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                return False
    return True


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


def wait_healthy(
    url: str, proc: subprocess.Popen[bytes], log_path: Path, what: str, timeout: float = 30.0
) -> None:
    """Wait until ``url`` answers 200; RuntimeError with the log's tail if the child exits,
    TimeoutError (after stopping it) if it never gets healthy."""
    import httpx  # only the HTTP-speaking children need it

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited:\n{log_path.read_text()[-2000:]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    stop(proc)
    raise TimeoutError(f"{what} not healthy:\n{log_path.read_text()[-2000:]}")


def start(
    argv: Sequence[str],
    log_path: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start a child in its own process group, output appended to a log file; it dies with
    this process (see the module docstring for the limits)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    tie = _prctl is not None and threading.current_thread() is threading.main_thread()
    with log_path.open("ab") as out:
        return subprocess.Popen(
            list(argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_die_with(os.getpid()) if tie else None,
        )


def _die_with(parent: int) -> Callable[[], None]:
    """Runs in the child between fork and exec: SIGKILL me when my parent dies. Only a
    pre-resolved C call and two syscalls, which is what is safe there."""

    def arm() -> None:
        assert _prctl is not None
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the request took hold
            os.kill(os.getpid(), signal.SIGKILL)

    return arm


def stop(proc: subprocess.Popen[bytes], timeout: float = 10.0, name: str = "") -> int:
    """SIGTERM the child's process group, SIGKILL it if it has not gone within timeout."""
    stop_all([(name or _label(proc), proc)], timeout)
    return proc.returncode


def stop_all(
    named: Sequence[tuple[str, subprocess.Popen[bytes]]], timeout: float = 10.0
) -> list[str]:
    """SIGTERM every child's process group at once, wait for all of them up to one
    deadline, then SIGKILL the groups still there and log their names. Returns those names
    (empty when everyone stopped in time)."""
    for _name, proc in named:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    stuck: list[str] = []
    for name, proc in named:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            stuck.append(name)
    for name, proc in named:
        if name in stuck:
            log.warning(
                "%s (pid %d) still running %.0fs after SIGTERM: killed", name, proc.pid, timeout
            )
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
    return stuck


def _label(proc: subprocess.Popen[bytes]) -> str:
    args = proc.args if isinstance(proc.args, list | tuple) else [proc.args]
    return " ".join(str(a) for a in args[:4])
