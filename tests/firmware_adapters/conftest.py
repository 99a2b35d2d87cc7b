"""Fixtures for the peripheral tests: simulators served on real pseudo-terminals.

The PIN pad on a pty and pcscd with its virtual card slot are in tests/conftest.py: the
transaction tests use them too, and one machine has room for one pcscd per test session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware_adapters.idcard.simulator import IdCardSimulator, sample_card
from firmware_adapters.pty_server import PtyServer


@pytest.fixture
def idcard_pty(tmp_path: Path) -> Iterator[PtyServer]:
    """A simulated ID-card reader with two cards, on a pty linked at tmp_path/idcard.tty."""
    server = PtyServer(IdCardSimulator([sample_card(0), sample_card(1)]), tmp_path / "idcard.tty")
    with server:
        yield server
