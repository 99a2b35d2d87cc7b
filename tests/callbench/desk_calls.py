"""The desk as a load generator sees it: tellers on the teller API, calls placed and ended.

A terminal's request goes to the desk's bench route (standing in for MQTT), the offer
reaches one of ``Tellers`` over the API's WebSocket, the teller accepts over HTTP (the
answer is its grant), the terminal fetches its grant, and both join the room as ``Leg``s.
Call setup is timed from the accept to the first picture on both sides.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx
from aiortc import RTCPeerConnection
from websockets.asyncio.client import connect

from tests.callbench.legs import Leg


class Tellers:
    """The generator's tellers on the desk: available, each listening on its WebSocket."""

    def __init__(self, http: httpx.AsyncClient, tokens: Sequence[str]) -> None:
        self.http, self.tokens = http, list(tokens)
        self.offers: dict[str, asyncio.Future[str]] = {}
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        for token in self.tokens:
            ready = asyncio.get_running_loop().create_future()
            self.tasks.append(asyncio.create_task(self._listen(token, ready)))
            await ready
            await self.http.post("/api/v1/teller/me/state", json={"state": "available"},
                                 headers=bearer(token))  # fmt: skip

    async def _listen(self, token: str, ready: asyncio.Future[None]) -> None:
        url = f"{self.http.base_url}".replace("http", "ws", 1).rstrip("/")
        async with connect(f"{url}/api/v1/teller/events?token={token}") as ws:
            ready.set_result(None)
            async for text in ws:
                message = json.loads(text)
                if message["type"] == "offer":
                    self.expect(message["session"]).set_result(token)

    def expect(self, session: str) -> asyncio.Future[str]:
        """Resolves with the token of the teller the session is offered to."""
        return self.offers.setdefault(session, asyncio.get_running_loop().create_future())

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Call:
    session: str
    teller_token: str
    customer: Leg
    teller: Leg
    setup_ms: float
    #: accept answered, terminal has its grant, both joined (published + subscribed), ms
    phases_ms: tuple[float, float, float]


async def place_call(
    http: httpx.AsyncClient,
    tellers: Tellers,
    session: str,
    business: str,
    add_media: Callable[[RTCPeerConnection], None],
    fast_receive: bool = False,
) -> Call:
    """A terminal asks, a teller accepts, both join; returns once both see a picture."""
    offered = tellers.expect(session)
    terminal = f"T-{session}"
    body = {"session": session, "terminal": terminal, "business": business}
    (await http.post("/bench/sessions", json=body)).raise_for_status()
    token = await asyncio.wait_for(offered, 20)
    t0 = time.monotonic()
    answer = await http.post(f"/api/v1/teller/sessions/{session}/accept", headers=bearer(token))
    answer.raise_for_status()
    t_accepted = time.monotonic()
    connect_msg = (await http.get(f"/bench/terminals/{terminal}/connect", timeout=40)).json()
    t_granted = time.monotonic()
    customer, teller = await asyncio.gather(
        Leg.join(connect_msg, add_media, fast_receive),
        Leg.join(answer.json(), add_media, fast_receive),
    )
    t_joined = time.monotonic()
    pictures = (customer.arrivals.picture.wait(), teller.arrivals.picture.wait())
    await asyncio.wait_for(asyncio.gather(*pictures), 15)
    last = max(customer.arrivals.first_picture or 0, teller.arrivals.first_picture or 0)
    phases = tuple((t - t0) * 1e3 for t in (t_accepted, t_granted, t_joined))
    return Call(session, token, customer, teller, (last - t0) * 1e3, phases)  # type: ignore[arg-type]


async def end_call(http: httpx.AsyncClient, call: Call) -> None:
    """The teller hangs up (the desk closes the room and its recording), both leave."""
    path = f"/api/v1/teller/sessions/{call.session}/hang-up"
    (
        await http.post(path, json={"cause": "done"}, headers=bearer(call.teller_token))
    ).raise_for_status()
    await http.post("/api/v1/teller/me/wrap-up-done", headers=bearer(call.teller_token))
    await asyncio.gather(call.customer.leave(), call.teller.leave())
