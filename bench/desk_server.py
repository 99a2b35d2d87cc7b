"""The cloud's teller desk in a process of its own, for the call load benchmark.

The desk (routing, session states, Janus rooms, tokens, recording archive) behind the real
teller API (``cloud.sessions.api``: WebSocket offers, accept, hang-up, wrap-up), so the
benchmark measures this process's CPU apart from Janus's and the load generator's. Two
stand-ins, because neither is wired into the API yet: teller tokens are a fixed table
(``bench-<business>-<i>``, from ``--tellers pension=30,insurance=1``; no database),
and the terminal's side (a session request and the ``connect`` message, which will
travel over MQTT) is two bench routes:

- ``POST /bench/sessions {session, terminal, business}`` — the customer presses "video teller";
- ``GET /bench/terminals/{terminal}/connect`` — waits for that terminal's grant.

Rooms are recorded; after hang-up, every ``--archive-every``-th session is archived by the
desk's ``Archiver`` (janus-pp-rec, ffmpeg, ffprobe check), and ``GET /bench/archive``
reports the results. Started by ``bench/calls.py``; prints ``ready`` when listening.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cloud.media.archive import Archiver
from cloud.media.errors import RecordingError
from cloud.media.nodes import Node
from cloud.media.pool import JanusPool, NodeAccess
from cloud.media.recording import RecordingResult
from cloud.sessions.api import router
from cloud.sessions.desk import Desk
from cloud.sessions.grants import Message
from cloud.sessions.outbox import Outbox
from cloud.sessions.routing import Board
from cloud.sessions.skills import Skills

LANGUAGE = "cmn"


class SessionIn(BaseModel):
    session: str
    terminal: str
    business: str


def build_app(args: argparse.Namespace) -> FastAPI:
    grants: dict[str, asyncio.Future[Message]] = {}
    archived: dict[str, Any] = {}
    counter = {"calls": 0}

    def grant_for(terminal: str) -> asyncio.Future[Message]:
        return grants.setdefault(terminal, asyncio.get_running_loop().create_future())

    async def terminal_sink(terminal: str, message: Message) -> None:
        if message["type"] == "connect" and not grant_for(terminal).done():
            grant_for(terminal).set_result(message)

    async def on_done(room: str, result: RecordingResult) -> None:
        archived[room] = {
            "streams": [[s.title, s.codec, round(s.seconds, 1)] for s in result.streams],
            "bytes": result.size,
        }

    async def on_error(room: str, err: RecordingError) -> None:
        archived[room] = {"error": str(err)}

    # Each load worker (and the probe) asks for its own business type and has its own
    # tellers, skilled in that one only, so offers never cross between processes.
    skills = {}
    for spec in args.tellers.split(","):
        business, count = spec.split("=")
        skills |= {f"{business}-{i}": business for i in range(int(count))}
    tokens = {f"bench-{teller}": teller for teller in skills}

    async def teller_auth(token: str) -> str | None:
        return tokens.get(token)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        node = NodeAccess("j1", args.janus_url, args.admin_url, args.admin_secret,
                          args.room_key, args.rec_dir, capacity=10_000)  # fmt: skip
        async with JanusPool([node]) as pool:
            archiver = Archiver(pool.rec_dir, Path(args.archive_dir), on_done, on_error)

            async def after_call(room: str, node: Node) -> None:
                counter["calls"] += 1
                if counter["calls"] % args.archive_every == 1 or args.archive_every == 1:
                    await archiver.after_call(room, node)

            board = Board()
            now = datetime.now(UTC).timestamp()
            for teller, business in skills.items():
                board.add_teller(teller, Skills.of({business: 5}, {LANGUAGE}), now)
            outbox = Outbox(terminal_sink=terminal_sink)
            desk = Desk(board, pool, outbox.notify, lambda: datetime.now(UTC),
                        after_call=after_call)  # fmt: skip
            app.state.desk, app.state.teller_outbox = desk, outbox
            app.state.teller_auth = teller_auth
            tasks = [asyncio.create_task(desk.run()), asyncio.create_task(archiver.run())]
            print("ready", flush=True)
            try:
                yield
            finally:
                for task in tasks:
                    task.cancel()

    app = FastAPI(lifespan=lifespan)
    app.include_router(router)

    @app.post("/bench/sessions", status_code=204)
    async def request_session(body: SessionIn) -> None:
        grant_for(body.terminal)  # ready before the desk can answer
        desk: Desk = app.state.desk
        await desk.request(body.session, body.terminal, body.business, LANGUAGE, False)

    @app.get("/bench/terminals/{terminal}/connect")
    async def connect(terminal: str) -> Message:
        try:
            return await asyncio.wait_for(asyncio.shield(grant_for(terminal)), 30)
        except TimeoutError as err:
            raise HTTPException(504, "no connect message") from err
        finally:
            if grant_for(terminal).done():
                grants.pop(terminal, None)

    @app.get("/bench/archive")
    async def archive() -> dict[str, Any]:
        return {"calls": counter["calls"], "archived": archived}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    for name in ("janus-url", "admin-url", "admin-secret", "room-key", "rec-dir", "archive-dir"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--tellers", required=True, help="business=count,... e.g. pension=30")
    parser.add_argument("--archive-every", type=int, default=10)
    args = parser.parse_args()
    config = uvicorn.Config(build_app(args), "127.0.0.1", args.port, log_level="warning",
                            ws_ping_interval=None)  # fmt: skip
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
