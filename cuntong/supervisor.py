"""Keeps ``cuntong up``'s own children running: one that exits is started again after a
backoff, instead of taking the whole demo down with it; a watched one that hangs is killed
and started again, as systemd does for a ``Type=notify`` service with ``WatchdogSec=``.

``Restarts`` and ``cuntong.watchdog`` are the pure parts (time and the random draw are
arguments); ``Child`` starts and restarts one process through ``common.procs``;
``NotifySocket`` is a watched child's ``NOTIFY_SOCKET``; ``Supervisor.tick`` is what the
launcher's watch loop calls about twice a second. The servers (broker, telemetry store,
Janus, coturn) are not supervised: they are started once and stopped at the end.

A watched child (``Child.watchdog``; in ``cuntong up`` the agents, ``agent_watchdog``) gets
its own Unix datagram socket beside its log (``<log>.notify``, 0600; an abstract name when
that path is too long for a socket address) as ``NOTIFY_SOCKET``, with ``WATCHDOG_USEC``,
so the agent says ``READY=1``, pings ``WATCHDOG=1`` every half interval and says
``STOPPING=1`` (``edge/sdnotify.py``). Only datagrams from the child's own pid count
(``SO_PASSCRED``; systemd's ``NotifyAccess=main``). One that goes silent is logged by name,
sent SIGABRT, SIGKILLed (its process group) ``abort_s`` later, and started again with the
same backoff as a crash: the hang counts as a failure, and only the time up to its last
ping counts as a stable run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import struct
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from common import backoff, procs
from common.errors import ConfigError
from cuntong.watchdog import Action, Liveness, Watchdog, parse

log = logging.getLogger("cuntong.supervisor")


@dataclass
class Restarts:
    """When to start a child again: full-jitter backoff on consecutive quick exits; a
    child that ran ``stable_s`` before exiting starts the count over."""

    base_s: float = 1.0
    cap_s: float = 30.0
    stable_s: float = 60.0
    failures: int = 0

    def after_exit(
        self,
        started_at: float,
        exited_at: float,
        draw: float,
        returncode: int | None = None,
        alive_until: float | None = None,
    ) -> float:
        """The time to start again, for a child started at ``started_at`` seen gone at
        ``exited_at`` (same clock). A child that exited with ``procs.RESTART_EXIT`` asked
        for the restart (the agent after a reboot command): at once, not a failure. For a
        child killed because it hung, ``alive_until`` is its last sign of health: only the
        run up to it counts as stable (a start that hangs every time still backs off)."""
        if returncode == procs.RESTART_EXIT:
            return exited_at
        ran_until = exited_at if alive_until is None else alive_until
        if ran_until - started_at >= self.stable_s:
            self.failures = 0
        wait = backoff.delay(self.failures, self.base_s, self.cap_s, draw)
        self.failures += 1
        return exited_at + wait


#: Where ``cuntong up`` reads the agents' watchdog interval (seconds; 0 turns it off).
WATCHDOG_ENV = "CUNTONG_UP_AGENT_WATCHDOG_S"
#: The terminal unit's ``WatchdogSec=`` (``cuntong.deploy.agent_unit``).
DEFAULT_WATCHDOG_S = 30.0
#: Longest ``sun_path`` a socket address may have on Linux (108 bytes with the NUL).
_SUN_PATH_MAX = 107
_CREDS = struct.Struct("3i")  # struct ucred: pid, uid, gid


def agent_watchdog(env: Mapping[str, str]) -> Watchdog | None:
    """The agents' watchdog from ``$CUNTONG_UP_AGENT_WATCHDOG_S`` (default 30 s, as on a
    terminal); None when set to 0. ConfigError naming the variable for anything else."""
    raw = env.get(WATCHDOG_ENV, "").strip() or str(DEFAULT_WATCHDOG_S)
    try:
        seconds = float(raw)
        if seconds == 0:
            return None
        return Watchdog(interval_s=seconds)
    except ValueError as err:
        raise ConfigError(
            f"{WATCHDOG_ENV}: {raw!r} is not a watchdog interval in seconds (0 turns it off)"
        ) from err


class NotifySocket:
    """A watched child's ``NOTIFY_SOCKET``: a Unix datagram socket at ``path`` (0600), or
    an abstract name when the path does not fit a socket address. Each datagram comes
    with its sender's pid (``SO_PASSCRED``), so the supervisor hears only its child."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.setblocking(False)
        self.path: Path | None = None
        if len(os.fsencode(path)) <= _SUN_PATH_MAX:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.unlink(missing_ok=True)  # left by a launcher that was killed
            self.sock.bind(str(path))
            path.chmod(0o600)
            self.path, self.address = path, str(path)
        else:
            self.sock.bind("")  # Linux autobind: a unique abstract name
            name = self.sock.getsockname()
            raw = name if isinstance(name, bytes) else name.encode()
            self.address = "@" + raw.lstrip(b"\0").decode()

    def receive(self) -> list[tuple[int, bytes]]:
        """Every datagram waiting, as (sender pid, bytes); pid 0 when none was attached."""
        got: list[tuple[int, bytes]] = []
        while True:
            try:
                data, ancdata, _flags, _addr = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
            except (BlockingIOError, InterruptedError):
                return got
            pid = 0
            for level, kind, payload in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = _CREDS.unpack(payload[: _CREDS.size])[0]
            got.append((pid, data))

    def close(self) -> None:
        self.sock.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)


@dataclass
class Child:
    """One supervised process: how to start it, and its current run."""

    name: str
    argv: Sequence[str]
    log_path: Path
    env: dict[str, str] | None = None
    restarts: Restarts = field(default_factory=Restarts)
    #: Watch it over the notify protocol; None: only restart it when it exits.
    watchdog: Watchdog | None = None
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    #: When it is due to start again; None while it runs.
    due: float | None = None
    #: How many times it has been started again.
    restarted: int = 0
    #: How many times the watchdog killed it.
    hung: int = 0
    notify: NotifySocket | None = None
    liveness: Liveness | None = None

    def start(self, now: float) -> subprocess.Popen[bytes]:
        env = self.env
        if self.watchdog is not None:
            if self.notify is None:
                self.notify = NotifySocket(self.log_path.with_suffix(".notify"))
            env = dict(os.environ if env is None else env)
            env.pop("WATCHDOG_PID", None)  # the pid is the child's own (the launcher execs)
            env |= {"NOTIFY_SOCKET": self.notify.address, "WATCHDOG_USEC": str(self.watchdog.usec)}
            env.setdefault("PYTHONFAULTHANDLER", "1")  # SIGABRT dumps the stacks into the log
            self.liveness = Liveness(self.watchdog, now)
        self.proc = procs.start(self.argv, self.log_path, env=env)
        self.started_at, self.due = now, None
        return self.proc

    def watch(self, now: float) -> None:
        """Hear the child's notifications and act on a hang: SIGABRT, then SIGKILL."""
        if self.notify is None or self.liveness is None or self.proc is None:
            return
        for pid, datagram in self.notify.receive():
            if pid != self.proc.pid:
                log.debug("%s: ignored a notification from pid %d", self.name, pid)
                continue
            try:
                self.liveness.heard(parse(datagram), now)
            except ValueError as err:
                log.warning("%s: ignored a notification: %s", self.name, err)
        if self.proc.poll() is not None:
            return
        action = self.liveness.check(now)
        if action is Action.ABORT:
            self.hung += 1
            status = f" (last status: {self.liveness.status})" if self.liveness.status else ""
            log.warning(
                "%s (pid %d) hung: %s%s; SIGABRT, SIGKILL in %gs if still there (see %s)",
                self.name,
                self.proc.pid,
                self.liveness.reason,
                status,
                self.watchdog.abort_s if self.watchdog else 0,
                self.log_path,
            )
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGABRT)
        elif action is Action.KILL:
            log.warning("%s (pid %d) still there after SIGABRT: SIGKILL", self.name, self.proc.pid)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)

    def alive_until(self) -> float | None:
        """The last sign of health of a run the watchdog ended; None for any other run."""
        if self.liveness is None or self.liveness.aborted_at is None:
            return None
        return self.liveness.alive_at

    def close(self) -> None:
        if self.notify is not None:
            self.notify.close()
            self.notify = None


@dataclass
class Supervisor:
    children: list[Child] = field(default_factory=list)

    def add(self, child: Child, now: float) -> Child:
        child.start(now)
        self.children.append(child)
        return child

    def tick(self, now: float, draw: float) -> None:
        """Hear the watched children, end those that hung, notice children that exited and
        start those whose backoff has run out."""
        for child in self.children:
            if child.due is None:
                child.watch(now)
                if child.proc is None or child.proc.poll() is None:
                    continue
                child.due = child.restarts.after_exit(
                    child.started_at, now, draw, child.proc.returncode, child.alive_until()
                )
                log.warning(
                    "%s exited with %s%s; starting it again in %.1fs (see %s)",
                    child.name,
                    child.proc.returncode,
                    " after it hung" if child.alive_until() is not None else "",
                    child.due - now,
                    child.log_path,
                )
            if child.due is not None and now >= child.due:
                proc = child.start(now)
                child.restarted += 1
                log.warning("%s started again (pid %d)", child.name, proc.pid)

    def stop(self, timeout: float) -> list[str]:
        """Stop every child (one deadline for all, SIGKILL after it); the names of those
        that had to be killed."""
        running = [(c.name, c.proc) for c in self.children if c.proc is not None]
        for child in self.children:
            child.due = None
        stuck = procs.stop_all(running, timeout)
        for child in self.children:
            child.close()
        return stuck
