"""A long poll cut on its way to real Janus (the signalling gate that carried it died, as a
SIGKILLed leader replica's does) stays waiting inside Janus, which hands it the session's
next event: without ``JanusSession._flush`` the answer to a join sent after the cut was lost
(``tests/ha/test_desk_takeover.py`` saw it through HAProxy and the cloud's gate; here a
plain TCP relay stands for that path, closed abruptly and opened again on its port)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets

from common import procs
from cuntong.servers.janus import Janus
from janus_client.errors import JanusError
from janus_client.janus import JanusAdmin, JanusClient


class Relay:
    """TCP from a local port to Janus's HTTP port; ``cut`` drops every connection at once."""

    def __init__(self, port: int, target: int) -> None:
        self.port, self.target = port, target
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def open(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        self.writers += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:  # as the kernel does for a killed process's sockets
            writer.transport.abort()
        self.writers.clear()
        await self.server.wait_closed()


async def test_a_join_after_the_poll_was_cut_is_answered(janus: Janus) -> None:
    token = secrets.token_hex(16)
    async with JanusAdmin(janus.admin_url, janus.cfg.admin_secret) as admin:
        await admin.add_token(token)
    relay = Relay(procs.free_port(), janus.cfg.http_port)
    await relay.open()
    try:
        url = f"http://127.0.0.1:{relay.port}/janus"
        async with JanusClient(url, token) as client, client.session() as session:
            handle = await session.attach("janus.plugin.videoroom")
            await asyncio.sleep(0.5)  # the session's long poll is waiting in Janus
            await relay.cut()
            await asyncio.sleep(0.2)
            await relay.open()  # the path is back (the standby's gate leads)
            # An asynchronous VideoRoom request: its answer is an event on the long poll (an
            # error for a room that does not exist, which is answer enough).
            body = {"request": "join", "ptype": "publisher", "room": "no-such-room"}
            event = await session.message(handle, body, wait=15)
            assert event.data.get("error_code") == 426, event.data
            assert not session.failed
    finally:
        with contextlib.suppress(JanusError, OSError, AssertionError):
            await relay.cut()
