"""The systemd notification protocol, spoken without a library.

A supervisor that wants to hear from the agent sets ``NOTIFY_SOCKET`` (a Unix datagram
socket path, ``@`` for the abstract namespace) and, for a watchdog, ``WATCHDOG_USEC``:
systemd with ``Type=notify`` and ``WatchdogSec=`` does, and so does ``cuntong.supervisor``
in ``cuntong up``. The agent sends ``READY=1`` once running, ``WATCHDOG=1`` every half
period while its event loop turns, and ``STOPPING=1`` on the way out. Without
``NOTIFY_SOCKET`` every call is a no-op.
"""

from __future__ import annotations

import os
import socket


def _address() -> str | None:
    path = os.environ.get("NOTIFY_SOCKET", "")
    if not path:
        return None
    return "\0" + path[1:] if path.startswith("@") else path


def notify(message: str) -> bool:
    """Send one notification; False when no supervisor listens (or the send failed)."""
    address = _address()
    if address is None:
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.sendto(message.encode(), address)
        except OSError:
            return False
    return True


def watchdog_s() -> float | None:
    """The watchdog period the supervisor asked for, in seconds (None: no watchdog)."""
    raw = os.environ.get("WATCHDOG_USEC", "")
    if not raw.isdigit() or int(raw) == 0 or _address() is None:
        return None
    pid = os.environ.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None  # meant for another process
    return int(raw) / 1_000_000
