"""Fixtures for the money-moving parts: the HSM service over SoftHSM2 and the core simulator,
each a real child process; the peripheral simulators (real pty, real pcscd + vpcd) come from
tests/conftest.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from common import procs
from corebank import CoreBankClient
from cuntong.servers.corebank import CoreBankServer
from cuntong.servers.hsm import HsmServer
from firmware_adapters.pty_server import PtyServer
from hsm import HsmClient
from tests.transactions.card_rig import Bank, issue


@pytest.fixture(scope="session")
def hsm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HsmServer]:
    """The HSM service over a fresh SoftHSM2 token; tests keep apart by key names and PANs."""
    server = HsmServer(procs.free_port(), tmp_path_factory.mktemp("hsm")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def hsm(hsm_server: HsmServer) -> AsyncIterator[HsmClient]:
    async with HsmClient(hsm_server.url, hsm_server.secret) as client:
        yield client


@pytest.fixture(scope="module")
def core_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CoreBankServer]:
    """A core simulator (own SQLite) with its fault switch on; tests keep apart by account
    and session names, and each fault they set is used up by their own next posting."""
    server = CoreBankServer(procs.free_port(), tmp_path_factory.mktemp("core"), faults=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def core(core_server: CoreBankServer) -> AsyncIterator[CoreBankClient]:
    async with CoreBankClient(core_server.url, core_server.secret, timeout=0.5,
                              backoff_base_s=0.05, backoff_cap_s=0.2) as client:  # fmt: skip
        yield client


@pytest.fixture
async def core_for_steps(core_server: CoreBankServer) -> AsyncIterator[CoreBankClient]:
    """The cloud's core client for the card and PIN steps, with a timeout generous for a
    loaded machine (a PIN count is not retried: a lost answer would count twice)."""
    async with CoreBankClient(core_server.url, core_server.secret, timeout=10.0) as client:
        yield client


@pytest.fixture
async def bank(
    pinpad_pty: PtyServer, hsm: HsmClient, core_for_steps: CoreBankClient,
    core_server: CoreBankServer,
) -> Bank:  # fmt: skip
    """This test's keys in the HSM, its customer's card, account and PIN (``card_rig``)."""
    return await issue(pinpad_pty, hsm, core_for_steps, core_server)
