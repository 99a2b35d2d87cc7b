"""Keep an MQTT link up: connect, serve until it drops, back off with full jitter, repeat.

The one reconnect loop behind the edge agent, the ingest links and the fleet command
sender. What a link does while connected is the caller's ``serve``; what it resets when the
link drops is ``on_down``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

import aiomqtt

from common import backoff

log = logging.getLogger("cuntong.mqtt")


async def keep_connected(
    make_client: Callable[[], aiomqtt.Client],
    serve: Callable[[aiomqtt.Client], Awaitable[None]],
    *,
    name: str,
    base_s: float,
    cap_s: float,
    on_down: Callable[[], None] = lambda: None,
    draw: Callable[[], float] = random.random,
) -> None:
    """Run forever (until cancelled); ``serve`` returning ends the loop too."""
    attempt = 0
    while True:
        try:
            async with make_client() as client:
                attempt = 0
                await serve(client)
                return
        except aiomqtt.MqttError as err:
            on_down()
            wait = backoff.delay(attempt, base_s, cap_s, draw())
            attempt += 1
            log.warning("%s link down (%s); retry %d in %.1fs", name, err, attempt, wait)
            await asyncio.sleep(wait)
