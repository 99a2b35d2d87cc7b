"""Keep an MQTT link up: connect, serve until it drops, back off with full jitter, repeat.

The one reconnect loop behind the edge agent, the ingest links and the fleet command
sender. What a link does while connected is the caller's ``serve``; what it resets when the
link drops is ``on_down``. The backoff starts over only after a link stayed up
``stable_s`` (the flap guard, ``common.backoff.next_attempt``).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable

import aiomqtt

from common import backoff

log = logging.getLogger("cuntong.mqtt")

#: The MQTT 5 session expiry every persistent client of ours asks for: "never" (the protocol's
#: maximum). Debian 12's Mosquitto 2.0.11 lists each offline session with a finite expiry a
#: second time on every SIGHUP, and frees it while still listed when it is taken over or
#: expires (a use-after-free, then a crash); it keeps never-expiring sessions out of that list
#: altogether (unless ``persistent_client_expiration`` is set, which our broker config never
#: does). Sessions that should end are ended by the cloud instead (a clean-start takeover:
#: ``cloud.security.Security.sweep_sessions``). docs/provisioning.md, "Broker reloads
#: (issue 14)".
SESSION_NEVER_EXPIRES = 0xFFFFFFFF


async def keep_connected(
    make_client: Callable[[], aiomqtt.Client],
    serve: Callable[[aiomqtt.Client], Awaitable[None]],
    *,
    name: str,
    base_s: float,
    cap_s: float,
    on_down: Callable[[], None] = lambda: None,
    draw: Callable[[], float] = random.random,
    stable_s: float = 0.0,
    on_retry: Callable[[int, float], None] = lambda attempt, wait: None,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Run forever (until cancelled); ``serve`` returning ends the loop too.

    ``on_retry(attempt, wait)`` hears each scheduled retry (0-based attempt, seconds)."""
    attempt = -1  # the first drop makes it 0: the base delay
    while True:
        up_at: float | None = None
        try:
            async with make_client() as client:
                up_at = clock()
                await serve(client)
                return
        except aiomqtt.MqttError as err:
            on_down()
            up_for = None if up_at is None else clock() - up_at
            attempt = backoff.next_attempt(attempt, up_for, stable_s)
            wait = backoff.delay(attempt, base_s, cap_s, draw())
            on_retry(attempt, wait)
            log.warning("%s link down (%s); retry %d in %.1fs", name, err, attempt + 1, wait)
            await asyncio.sleep(wait)
