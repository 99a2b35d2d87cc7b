"""The real cloud app (uvicorn on loopback, its real desk and Janus pool) in front of a real
Janus, with grants carrying the cloud's Janus signalling gate (``/media/janus/janus-1``):
shared by ``tests/teller/test_janus_gate.py`` and ``bench/janus_gate.py``."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from argon2 import PasswordHasher

from cloud.api.deps import services_of
from cloud.catalogue import load_catalogue
from cloud.evidence.keys import EvidenceKeys
from cloud.oversight import Oversight
from cloud.sessions.desk import Desk
from common import procs
from common import suite as suite_lib
from common.settings import CloudSettings
from cuntong.app import create_app
from cuntong.servers.janus import Janus


@dataclass
class GatedCloud:
    desk: Desk
    gate_url: str
    signals: list[tuple[str, str]]
    db: Path


@contextlib.asynccontextmanager
async def gated_cloud(tmp_path: Path, janus: Janus) -> AsyncIterator[GatedCloud]:
    port = procs.free_port()
    gate_url = f"http://127.0.0.1:{port}/media/janus/janus-1"
    settings = CloudSettings(
        db_url=f"sqlite://{tmp_path / 'cloud.sqlite3'}",
        ingest=False,
        janus_url=janus.url,
        janus_public_url=gate_url,  # what grants carry: the cloud's gate
        janus_admin_url=janus.admin_url,
        janus_admin_secret=janus.cfg.admin_secret,
        janus_room_key=janus.cfg.room_admin_key,
        janus_rec_dir=tmp_path / "rec",
        archive_dir=tmp_path / "archive",
    )
    ov = Oversight(
        load_catalogue(),
        EvidenceKeys.generate(),
        tmp_path / "evidence",
        suite_lib.Suite.STANDARD,
        hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1),
    )
    app = create_app(settings, oversight=ov)
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=1
        )
    )
    serving = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(30):
            while not server.started:  # noqa: ASYNC110 - uvicorn offers no event
                await asyncio.sleep(0.05)
        desk_services = services_of(app).desk
        assert desk_services is not None
        signals: list[tuple[str, str]] = []
        desk_services.gate.on_signal.append(lambda tid, s: signals.append((tid, s)))
        yield GatedCloud(desk_services.desk, gate_url, signals, tmp_path / "cloud.sqlite3")
    finally:
        server.should_exit = True
        await serving


def audit_rows(db: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "select actor, target, detail from audit_entry where action = 'media_join_refused'"
        ).fetchall()
