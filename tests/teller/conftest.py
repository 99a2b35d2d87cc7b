"""Fixtures for the teller tests: Janus and coturn as child processes on loopback, and the
browser teller's page."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from common import procs
from cuntong.servers.coturn import Coturn, CoturnConfig
from cuntong.servers.janus import Janus, JanusConfig
from tests.teller.browser import serve_page


def _janus(state_dir: Path, cors_origin: str = "") -> Iterator[Janus]:
    # Other jobs on the machine take ports too: a port free when picked can be gone when
    # Janus binds it, so a failed start is retried on fresh ports.
    for attempt in range(3):
        cfg = JanusConfig(procs.free_port(), procs.free_port(), ice_enforce="127.0.0.1",
                          cors_origin=cors_origin)  # fmt: skip
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
    cfg = CoturnConfig(
        procs.free_port(), allow_loopback_peers=True, allowed_peer_ips=("127.0.0.1",)
    )
    server = Coturn(cfg, tmp_path / "coturn").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[str]:
    """The browser teller's page on a loopback web server; yields its origin."""
    with serve_page(tmp_path / "site") as origin:
        yield origin


@pytest.fixture
def cors_janus(tmp_path: Path, site: str) -> Iterator[Janus]:
    """A Janus whose HTTP API the page at ``site`` may call (CORS)."""
    yield from _janus(tmp_path / "janus-cors", cors_origin=site)


def host_address() -> str:
    """This host's first non-loopback IPv4 address: where Janus's ICE candidates are (libnice
    never offers loopback), so the only address a TURN relay can reach Janus on."""
    for addrs in psutil.net_if_addrs().values():
        for addr in addrs:
            if addr.family == socket.AF_INET and not addr.address.startswith("127."):
                return addr.address
    pytest.skip("no non-loopback IPv4 address to relay to")


@pytest.fixture
def relay_coturn(tmp_path: Path) -> Iterator[Coturn]:
    """coturn listening and relaying on the host's address, so relayed media reaches Janus."""
    ip = host_address()
    cfg = CoturnConfig(procs.free_port(ip), listen_ip=ip, relay_ip=ip, allowed_peer_ips=(ip,))
    server = Coturn(cfg, tmp_path / "relay-coturn").start()
    try:
        yield server
    finally:
        server.stop()
