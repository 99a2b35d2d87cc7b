"""Wait for the customer to put the card down: a device step the desk asks for starts with
the customer screen saying "请插入银行卡" or "请把身份证放在读卡区", and the customer needs
time to do it. A reader answering "no card" (``CardAbsent``) is asked again until the card
is there or ``wait_s`` has passed; then the step fails with the reader's own words.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from firmware_adapters.errors import CardAbsent

T = TypeVar("T")

#: How long a step waits for the customer to insert or place the card.
CARD_WAIT_S = 60.0
#: How often an empty reader is asked again meanwhile.
CARD_POLL_S = 0.3


async def once_present(
    attempt: Callable[[], Awaitable[T]],
    wait_s: float = CARD_WAIT_S,
    poll_s: float = CARD_POLL_S,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """``attempt()`` again while the reader has no card, for at most ``wait_s``."""
    deadline = clock() + wait_s
    while True:
        try:
            return await attempt()
        except CardAbsent:
            if clock() + poll_s > deadline:
                raise
        await asyncio.sleep(poll_s)
