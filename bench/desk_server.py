"""The cloud with its teller desk in a process of its own, for the call load benchmark.

The real cloud app (``cuntong.app.create_app`` on SQLite, ingest off) with the desk as
``cloud.sessions.wiring`` builds it: routing board over the catalogue's business table,
session states persisted to the database (``store.save``), ``JanusPool`` (rooms,
per-call tokens), the teller API (oversight accounts with the teller role: offers over
the WebSocket, accept/hang-up/wrap-up over HTTP) and the recording ``Archiver``. The
benchmark measures this process's CPU apart from Janus's and the load generator's.

One stand-in: a terminal's request and its ``connect`` grant, which travel over MQTT
from enrolled terminals in production (``cloud.sessions.bridge``), go over two bench
routes here, so the generator needs no broker or terminal certificates:

- ``POST /bench/sessions {session, terminal, business}`` — the customer presses "video teller";
- ``GET /bench/terminals/{terminal}/connect`` — waits for that terminal's grant.

Tellers are accounts ``<business>-<i>`` (``--tellers pension=30,insurance=1``), each
skilled in that business only and already logged in: ``GET /bench/tellers/{business}``
hands the generator their bearer tokens (logging 50 tellers in through the API would
only meet its rate limit). After hang-up, every ``--archive-every``-th session is archived
(janus-pp-rec, ffmpeg, ffprobe check); ``GET /bench/archive`` reports the results.
Started by ``bench/calls.py``; prints ``ready`` when listening.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import uvicorn
from argon2 import PasswordHasher
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cloud.api import deps
from cloud.auth import service
from cloud.catalogue import load_catalogue
from cloud.evidence.keys import EvidenceKeys
from cloud.media.archive import Archiver
from cloud.media.errors import RecordingError
from cloud.media.nodes import Node
from cloud.media.pool import JanusPool, NodeAccess
from cloud.media.recording import RecordingResult
from cloud.oversight import Oversight
from cloud.sessions import store
from cloud.sessions.desk import Desk
from cloud.sessions.grants import Message
from cloud.sessions.outbox import Outbox
from cloud.sessions.routing import Board, Policy
from cloud.sessions.skills import Skills, business_table
from common import suite as suite_lib
from common.settings import CloudSettings
from cuntong.app import create_app

LANGUAGE = "cmn"
PASSWORD = "bench teller password"
#: Cheap Argon2id: the benchmark measures calls, not logins.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


class SessionIn(BaseModel):
    session: str
    terminal: str
    business: str


def now() -> datetime:
    return datetime.now(UTC)


class Bench:
    """The stand-ins' state: grants waiting for terminals, tokens, archive results."""

    def __init__(self) -> None:
        self.grants: dict[str, asyncio.Future[Message]] = {}
        self.tokens: dict[str, list[str]] = {}
        self.archived: dict[str, Any] = {}
        self.calls = 0
        self.desk: Desk | None = None  # set once the desk is built

    def grant_for(self, terminal: str) -> asyncio.Future[Message]:
        return self.grants.setdefault(terminal, asyncio.get_running_loop().create_future())

    async def terminal_sink(self, terminal: str, message: Message) -> None:
        if message["type"] == "connect" and not self.grant_for(terminal).done():
            self.grant_for(terminal).set_result(message)

    async def on_done(self, room: str, result: RecordingResult) -> None:
        await store.set_recording(room, str(result.path), result.sha256)
        self.archived[room] = {
            "streams": [[s.title, s.codec, round(s.seconds, 1)] for s in result.streams],
            "bytes": result.size,
        }

    async def on_error(self, room: str, err: RecordingError) -> None:
        self.archived[room] = {"error": str(err)}


def add_routes(app: FastAPI, bench: Bench) -> None:
    @app.post("/bench/sessions", status_code=204)
    async def request_session(body: SessionIn) -> None:
        bench.grant_for(body.terminal)  # ready before the desk can answer
        desk = bench.desk
        if desk is None:
            raise HTTPException(503, "desk not built yet")
        await desk.request(body.session, body.terminal, body.business, LANGUAGE, False)

    @app.get("/bench/terminals/{terminal}/connect")
    async def connect(terminal: str) -> Message:
        try:
            return await asyncio.wait_for(asyncio.shield(bench.grant_for(terminal)), 30)
        except TimeoutError as err:
            raise HTTPException(504, "no connect message") from err
        finally:
            if bench.grant_for(terminal).done():
                bench.grants.pop(terminal, None)

    @app.get("/bench/tellers/{business}")
    async def tellers(business: str) -> list[str]:
        return bench.tokens.get(business, [])

    @app.get("/bench/archive")
    async def archive() -> dict[str, Any]:
        return {"calls": bench.calls, "archived": bench.archived}


async def serve(args: argparse.Namespace) -> None:
    state = Path(args.state_dir)
    ov = Oversight(load_catalogue(), EvidenceKeys.generate(), state / "evidence",
                   suite_lib.Suite.STANDARD, hasher=FAST_HASHER)  # fmt: skip
    settings = CloudSettings(db_url=f"sqlite://{state / 'cloud.sqlite3'}", ingest=False)
    app = create_app(settings, oversight=ov)
    bench = Bench()
    add_routes(app, bench)
    config = uvicorn.Config(app, "127.0.0.1", args.port, log_level="warning",
                            ws_ping_interval=None)  # fmt: skip
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event
        await asyncio.sleep(0.05)
    # As cloud.sessions.wiring.start builds the desk, with the bench's terminal sink.
    node = NodeAccess("j1", args.janus_url, args.admin_url, args.admin_secret,
                      args.room_key, args.rec_dir, capacity=10_000)  # fmt: skip
    async with JanusPool([node]) as pool:
        archiver = Archiver(pool.rec_dir, Path(args.archive_dir), bench.on_done, bench.on_error)

        async def after_call(room: str, node: Node) -> None:
            bench.calls += 1
            if bench.calls % args.archive_every == 1 or args.archive_every == 1:
                await archiver.after_call(room, node)

        table = business_table(ov.catalogue)
        board = Board(Policy(businesses=table))
        for spec in args.tellers.split(","):
            business, count = spec.split("=")
            for i in range(int(count)):
                teller = f"{business}-{i}"
                await service.create_account(teller, PASSWORD, ["teller"], now(),
                                             hasher=FAST_HASHER)  # fmt: skip
                login = await service.login(teller, PASSWORD, now(), timedelta(hours=2),
                                            FAST_HASHER)  # fmt: skip
                assert login is not None
                bench.tokens.setdefault(business, []).append(login[0])
                skills = Skills.of({business: 5}, {LANGUAGE}, table)
                board.add_teller(teller, skills, now().timestamp())
        outbox = Outbox(terminal_sink=bench.terminal_sink)
        desk = Desk(board, pool, outbox.notify, now, persist=store.save,
                    after_call=after_call)  # fmt: skip
        bench.desk = desk
        app.dependency_overrides[deps.desk_or_none] = lambda: desk
        app.dependency_overrides[deps.outbox_or_none] = lambda: outbox
        tasks = [asyncio.create_task(desk.run()), asyncio.create_task(archiver.run())]
        print("ready", flush=True)
        try:
            await serving  # until SIGTERM (uvicorn's handler) or SIGINT
        finally:
            for task in tasks:
                task.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    for name in ("janus-url", "admin-url", "admin-secret", "room-key", "rec-dir", "archive-dir",
                 "state-dir"):  # fmt: skip
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--tellers", required=True, help="business=count,... e.g. pension=30")
    parser.add_argument("--archive-every", type=int, default=10)
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
