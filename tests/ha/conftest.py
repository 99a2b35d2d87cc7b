"""Fixtures for the high-availability tests: a Janus for the leader's teller desk."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cuntong.servers.janus import Janus
from tests.teller.conftest import _janus


@pytest.fixture
def janus(tmp_path: Path) -> Iterator[Janus]:
    yield from _janus(tmp_path / "janus")
