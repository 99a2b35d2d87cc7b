"""Fixtures for the teller tests: Janus and coturn as child processes on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cuntong import procs
from cuntong.servers.coturn import Coturn, CoturnConfig
from cuntong.servers.janus import Janus, JanusConfig


def _janus(state_dir: Path) -> Iterator[Janus]:
    # Other jobs on the machine take ports too: a port free when picked can be gone when
    # Janus binds it, so a failed start is retried on fresh ports.
    for attempt in range(3):
        cfg = JanusConfig(procs.free_port(), procs.free_port(), ice_enforce="127.0.0.1")
        try:
            server = Janus(cfg, state_dir / f"try{attempt}").start()
            break
        except RuntimeError:
            if attempt == 2:
                raise
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def janus(tmp_path: Path) -> Iterator[Janus]:
    """A fresh Janus (VideoRoom, HTTP + admin API, token auth) per test."""
    yield from _janus(tmp_path / "janus")


@pytest.fixture
def second_janus(tmp_path: Path) -> Iterator[Janus]:
    """Another Janus node, for placement across nodes."""
    yield from _janus(tmp_path / "janus2")


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[Coturn]:
    cfg = CoturnConfig(procs.free_port(), allow_loopback_peers=True)
    server = Coturn(cfg, tmp_path / "coturn").start()
    try:
        yield server
    finally:
        server.stop()
