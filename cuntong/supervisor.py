"""Keeps ``cuntong up``'s own children running: one that exits is started again after a
backoff, instead of taking the whole demo down with it.

``Restarts`` is the pure part (time and the random draw are arguments); ``Child`` starts
and restarts one process through ``common.procs``; ``Supervisor.tick`` is what the
launcher's watch loop calls about once a second. The servers (broker, telemetry store,
Janus, coturn) are not supervised: they are started once and stopped at the end.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from common import backoff, procs

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
        self, started_at: float, exited_at: float, draw: float, returncode: int | None = None
    ) -> float:
        """The time to start again, for a child started at ``started_at`` seen gone at
        ``exited_at`` (same clock). A child that exited with ``procs.RESTART_EXIT`` asked
        for the restart (the agent after a reboot command): at once, not a failure."""
        if returncode == procs.RESTART_EXIT:
            return exited_at
        if exited_at - started_at >= self.stable_s:
            self.failures = 0
        wait = backoff.delay(self.failures, self.base_s, self.cap_s, draw)
        self.failures += 1
        return exited_at + wait


@dataclass
class Child:
    """One supervised process: how to start it, and its current run."""

    name: str
    argv: Sequence[str]
    log_path: Path
    env: dict[str, str] | None = None
    restarts: Restarts = field(default_factory=Restarts)
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    #: When it is due to start again; None while it runs.
    due: float | None = None
    #: How many times it has been started again.
    restarted: int = 0

    def start(self, now: float) -> subprocess.Popen[bytes]:
        self.proc = procs.start(self.argv, self.log_path, env=self.env)
        self.started_at, self.due = now, None
        return self.proc


@dataclass
class Supervisor:
    children: list[Child] = field(default_factory=list)

    def add(self, child: Child, now: float) -> Child:
        child.start(now)
        self.children.append(child)
        return child

    def tick(self, now: float, draw: float) -> None:
        """Notice children that exited and start those whose backoff has run out."""
        for child in self.children:
            if child.due is None:
                if child.proc is None or child.proc.poll() is None:
                    continue
                child.due = child.restarts.after_exit(
                    child.started_at, now, draw, child.proc.returncode
                )
                log.warning(
                    "%s exited with %s; starting it again in %.1fs (see %s)",
                    child.name,
                    child.proc.returncode,
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
        return procs.stop_all(running, timeout)
