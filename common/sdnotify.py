"""systemd's readiness and watchdog protocol, spoken directly (no libsystemd).

A unit with ``Type=notify`` sets ``NOTIFY_SOCKET``: a Unix datagram socket (a path, or an
abstract name written with a leading ``@``). The service sends ``READY=1`` once it serves,
``WATCHDOG=1`` at least every ``WATCHDOG_USEC`` microseconds (``WatchdogSec=``; systemd kills
and restarts it otherwise) and ``STOPPING=1`` when it begins to stop. Outside systemd
(no ``NOTIFY_SOCKET``) every call is a no-op, so the same process runs anywhere.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Mapping


def _address(env: Mapping[str, str]) -> str | None:
    path = env.get("NOTIFY_SOCKET", "")
    if not path:
        return None
    # Abstract socket: the leading "@" stands for the NUL byte.
    return "\0" + path[1:] if path.startswith("@") else path


def notify(message: str, env: Mapping[str, str] | None = None) -> bool:
    """Send one ``KEY=VALUE`` line set; False when not under systemd or the send failed."""
    address = _address(os.environ if env is None else env)
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message.encode(), address)
    except OSError:
        return False
    return True


def watchdog_interval(env: Mapping[str, str] | None = None, pid: int | None = None) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings (half systemd's deadline), or None if unwatched."""
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    # WATCHDOG_PID, when set, names the one process the deadline is for.
    owner = env.get("WATCHDOG_PID", "")
    if owner and int(owner) != (os.getpid() if pid is None else pid):
        return None
    return int(usec) / 1e6 / 2


async def keep_alive(interval: float) -> None:
    """Ping the watchdog until cancelled. Runs on the event loop, so a stuck loop (the
    failure the watchdog exists for) stops the pings and systemd restarts the service."""
    while True:
        notify("WATCHDOG=1")
        await asyncio.sleep(interval)


def start_watchdog() -> asyncio.Task[None] | None:
    """``READY=1`` and, when systemd asked for one, the watchdog task (cancel it to stop)."""
    notify("READY=1")
    interval = watchdog_interval()
    return asyncio.create_task(keep_alive(interval)) if interval else None
