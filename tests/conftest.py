"""Fixtures that start real servers as child processes on free loopback ports."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from common import procs
from cuntong.servers.mosquitto import Broker, BrokerConfig
from cuntong.servers.postgres import Postgres
from cuntong.servers.victoria import VictoriaMetrics


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A fresh anonymous Mosquitto (MQTT 5) per test."""
    b = Broker(BrokerConfig(port=procs.free_port()), tmp_path / "mosquitto").start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture(scope="session")
def victoria(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VictoriaMetrics]:
    """One VictoriaMetrics for the session; tests keep apart by terminal id."""
    vm = VictoriaMetrics(procs.free_port(), tmp_path_factory.mktemp("vm") / "data").start()
    try:
        yield vm
    finally:
        vm.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Postgres]:
    # Not under pytest's tmp dir: that is root-only, and the server runs as `postgres`.
    base = Path(tempfile.mkdtemp(prefix="cuntong-pg-"))
    pg = Postgres(procs.free_port(), base / "data").start()
    try:
        yield pg
    finally:
        pg.stop()
        pg.remove()
