"""The simulated customer at work: now and then ask for a teller, wait, talk, rate.

Runs on a simulated terminal when ``sim_teller_every_s`` is set. Everything it does goes
through the same ``TellerClient`` entry points as the customer screen's buttons, so the
demo's calls exercise the real signalling and media path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from common.aio import within
from edge.teller.call import IN_ROOM, Phase
from edge.teller.client import TellerClient
from edge.teller.customer import SimulatedCustomer

log = logging.getLogger("cuntong.teller.visits")


async def _until(client: TellerClient, done: set[Phase] | frozenset[Phase], limit: float) -> bool:
    """Wait until the call is in one of ``done`` phases; False after ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while client.call.phase not in done:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        client.changed.clear()
        with contextlib.suppress(TimeoutError):
            await within(client.changed.wait(), remaining)
    return True


async def visit(client: TellerClient, customer: SimulatedCustomer) -> None:
    """One customer's whole visit."""
    business = customer.business()
    log.info("simulated customer asks for a teller (%s)", business)
    await client.ask(business, elderly=customer.elderly())
    after_wait = IN_ROOM | {Phase.IDLE, Phase.RATING}
    if not await _until(client, after_wait, customer.patience_s()):
        await client.end("customer left")
        return
    talked = client.call.phase not in IN_ROOM or await _until(
        client, {Phase.RATING, Phase.IDLE}, customer.talk_s()
    )
    if not talked:
        await client.end("customer ended")
    if client.call.phase is Phase.RATING:
        await asyncio.sleep(customer.read_s)
        await client.rate(customer.score())


async def visits(client: TellerClient, customer: SimulatedCustomer) -> None:
    while True:
        await asyncio.sleep(customer.next_visit_in())
        if client.call.phase is Phase.IDLE:
            await visit(client, customer)
