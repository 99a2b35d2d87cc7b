"""Start the agent from its current slot: what systemd (or ``cuntong.supervisor``) runs.

``python -m edge.launcher [agent arguments]`` reads the state folder from
``CUNTONG_AGENT_STATE_DIR`` (or ``--state-dir``), lets ``edge.agent_slots.prepare`` count a
trial start or roll back, points ``current`` at the slot and replaces itself (``exec``) with
``python -m cuntong agent`` running that slot's code. Exec, not a child: under systemd the
agent stays the service's main process, so its ``sd_notify`` readiness and watchdog pings
count (``Type=notify``, ``WatchdogSec=``). The launcher is part of the base install and is
never updated over the air; everything it does is in ``prepare``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from edge import agent_slots


def _state_dir(argv: list[str]) -> Path:
    for i, arg in enumerate(argv):
        if arg == "--state-dir" and i + 1 < len(argv):
            return Path(argv[i + 1])
        if arg.startswith("--state-dir="):
            return Path(arg.split("=", 1)[1])
    raw = os.environ.get("CUNTONG_AGENT_STATE_DIR", "")
    if not raw:
        raise SystemExit("edge.launcher: set CUNTONG_AGENT_STATE_DIR or pass --state-dir")
    return Path(raw)


def main(argv: list[str]) -> None:
    state_dir = _state_dir(argv)
    env, slot = agent_slots.prepare(state_dir, dict(os.environ), time.time())
    print(f"edge.launcher: starting the agent from slot {slot}", file=sys.stderr, flush=True)
    # -P: the working folder must never shadow the slot's code on sys.path.
    os.execve(sys.executable, [sys.executable, "-P", "-m", "cuntong", "agent", *argv], env)


if __name__ == "__main__":
    main(sys.argv[1:])
