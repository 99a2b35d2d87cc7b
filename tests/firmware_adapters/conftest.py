"""Fixtures for the peripheral tests: simulators served on real pseudo-terminals."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

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
