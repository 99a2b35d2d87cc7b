"""Fixtures: two real Janus nodes (VideoRoom, HTTP + admin API, token auth) per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cuntong.servers.janus import Janus
from tests.teller.conftest import _janus


@pytest.fixture
def janus_a(tmp_path: Path) -> Iterator[Janus]:
    yield from _janus(tmp_path / "janus-a")


@pytest.fixture
def janus_b(tmp_path: Path) -> Iterator[Janus]:
    yield from _janus(tmp_path / "janus-b")
