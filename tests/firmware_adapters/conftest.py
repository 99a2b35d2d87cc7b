"""Fixtures for the peripheral tests: simulators served on real pseudo-terminals."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware_adapters.iccard.pcscd import Pcscd, free_port_pair
from firmware_adapters.iccard.vpcd import VirtualCardSlot
from firmware_adapters.idcard.simulator import IdCardSimulator, sample_card
from firmware_adapters.pinpad.simulator import PinPadSimulator
from firmware_adapters.pty_server import PtyServer


@pytest.fixture
def idcard_pty(tmp_path: Path) -> Iterator[PtyServer]:
    """A simulated ID-card reader with two cards, on a pty linked at tmp_path/idcard.tty."""
    server = PtyServer(IdCardSimulator([sample_card(0), sample_card(1)]), tmp_path / "idcard.tty")
    with server:
        yield server


@pytest.fixture
def pinpad_pty(tmp_path: Path) -> Iterator[PtyServer]:
    """A simulated PIN pad at 9600 baud whose customer types 123654 then enter."""
    server = PtyServer(PinPadSimulator("123654#", 0.01), tmp_path / "pinpad.tty", 9600)
    with server:
        yield server


@pytest.fixture(scope="session")
def pcscd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pcscd]:
    """The real pcscd as a child process, with vpcd listening on a free port."""
    daemon = Pcscd(free_port_pair(), tmp_path_factory.mktemp("pcscd")).start()
    try:
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture
def card_slot(pcscd_server: Pcscd) -> Iterator[VirtualCardSlot]:
    """The first virtual reader's slot, empty at the start and end of each test."""
    slot = VirtualCardSlot(pcscd_server.port)
    try:
        yield slot
    finally:
        slot.remove()
