"""Both ends of a teller call against the real cloud: a terminal on MQTT (enrolled, with
its own certificate, as the agent would be) and a teller on HTTP + WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect

from common import envelope, topics
from tests.helpers import CloudProcess, enrolled_link


@dataclass
class Terminal:
    """A terminal's session client: requests on ``session``, desk messages from ``desk``."""

    tid: str
    client: aiomqtt.Client
    inbox: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)

    async def send(self, message: dict[str, Any] | bytes) -> None:
        payload = message if isinstance(message, bytes) else orjson.dumps(message)
        await self.client.publish(topics.topic(self.tid, topics.Channel.SESSION), payload, qos=1)

    async def request(self, business: str = "pension", **extra: Any) -> str:
        request_id = uuid.uuid4().hex
        await self.send(
            {
                "type": "request",
                "request_id": request_id,
                "business": business,
                "language": "cmn",
                "elderly": False,
                **extra,
            }
        )
        return request_id

    async def status(self, online: bool) -> None:
        await self.client.publish(
            topics.topic(self.tid, topics.Channel.STATUS), _status(self.tid, online), 1, True
        )

    async def expect(self, kind: str, timeout: float = 15.0) -> dict[str, Any]:  # noqa: ASYNC109
        """The next desk message of this type (others are skipped: queued updates)."""
        async with asyncio.timeout(timeout):
            while True:
                message = await self.inbox.get()
                if message["type"] == kind:
                    return message


def _status(tid: str, online: bool) -> bytes:
    ts = int(time.time() * 1000)
    return envelope.Status(tid, online, ts, {}, {}, "ZN-E100").to_bytes()


@contextlib.asynccontextmanager
async def terminal(tmp: Path, cloud: CloudProcess, port: int, tid: str) -> AsyncIterator[Terminal]:
    """Enrol ``tid`` with a factory claim, connect with its certificate, listen on ``desk``."""
    link = await enrolled_link(cloud.url, tmp / "terminals" / tid, tid)
    status = topics.topic(tid, topics.Channel.STATUS)
    async with aiomqtt.Client(
        "127.0.0.1",
        port,
        identifier=tid,
        protocol=aiomqtt.ProtocolVersion.V5,
        tls_context=link.tls,
        will=aiomqtt.Will(status, _status(tid, False), qos=1, retain=True),
    ) as client:
        await client.subscribe(topics.topic(tid, topics.Channel.DESK), qos=1)
        t = Terminal(tid, client)
        await t.status(True)

        async def pump() -> None:
            async for message in client.messages:
                t.inbox.put_nowait(json.loads(message.payload))  # type: ignore[arg-type]

        reader = asyncio.create_task(pump())
        try:
            yield t
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)


@dataclass
class Teller:
    """A teller's screen: HTTP with the login token, the event WebSocket."""

    http: httpx.AsyncClient
    ws_url: str
    ws: ClientConnection | None = None

    @classmethod
    async def login(cls, url: str, account: str, password: str) -> Teller:
        async with httpx.AsyncClient(base_url=url, timeout=10) as anon:
            r = await anon.post(
                "/api/v1/auth/login", json={"username": account, "password": password}
            )
        r.raise_for_status()
        token = r.json()["token"]
        http = httpx.AsyncClient(
            base_url=url, timeout=20, headers={"Authorization": f"Bearer {token}"}
        )
        ws_url = url.replace("http", "ws", 1) + f"/api/v1/teller/events?token={token}"
        return cls(http, ws_url)

    async def open(self) -> None:
        self.ws = await connect(self.ws_url)
        assert (await self.event("hello"))["type"] == "hello"

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
            self.ws = None

    async def event(self, kind: str, timeout: float = 15.0) -> dict[str, Any]:  # noqa: ASYNC109
        assert self.ws is not None
        async with asyncio.timeout(timeout):
            while True:
                message = json.loads(await self.ws.recv())
                if message["type"] == kind:
                    return message  # type: ignore[no-any-return]

    async def post(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        r = await self.http.post(f"/api/v1/teller{path}", json=body)
        assert r.is_success, f"{path}: {r.status_code} {r.text}"
        return r

    async def get(self, path: str) -> dict[str, Any]:
        r = await self.http.get(f"/api/v1/teller{path}")
        assert r.is_success, f"{path}: {r.status_code} {r.text}"
        return r.json()  # type: ignore[no-any-return]
