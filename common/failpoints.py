"""Failpoints: named places where a test stops a real process on purpose (after etcd's
gofail), to put it in a window no signal from outside can hit reliably.

``$CUNTONG_FAILPOINTS`` lists names, comma-separated; ``hit(name)`` for a listed name stops
the whole process with SIGSTOP (the first time only, and only in a process that has the
variable), after logging ``failpoint <name>: stopping``. The test then does what it needs
while the process is frozen at that point (a standby takes the lease) and sends SIGCONT.
Unset (every deployment), ``hit`` is a set lookup.

Places:

- ``rollout-write``: the rollout engine has decided a beat and is about to write it
  (``fleet.rollouts``): a paused leader's write in flight (``tests/ha/test_replicas.py``).
- ``sender-publish``: the command sender has marked commands sent and not yet published
  them (``fleet.sender``): a leader dying there (``tests/ha/test_command_takeover.py``).
"""

from __future__ import annotations

import logging
import os
import signal

__all__ = ["ENV", "hit"]

ENV = "CUNTONG_FAILPOINTS"
log = logging.getLogger("cuntong.failpoints")

_armed = {name.strip() for name in os.environ.get(ENV, "").split(",") if name.strip()}


def hit(name: str) -> None:
    """Stop this process here if ``name`` is armed (once)."""
    if name not in _armed:
        return
    _armed.discard(name)
    log.warning("failpoint %s: stopping", name)
    for handler in logging.getLogger().handlers:  # the test reads it while we are stopped
        handler.flush()
    os.kill(os.getpid(), signal.SIGSTOP)
