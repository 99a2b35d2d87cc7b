"""Fixtures for the terminal call tests: the secured broker + cloud (mTLS), Janus, a desk.

One secured stack and one Janus serve the whole module (the cloud API takes seconds to start
on a loaded machine); each test uses its own terminal id and room.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud.security import broker_services
from cuntong.servers.janus import Janus
from cuntong.servers.mosquitto import Broker
from cuntong.servers.victoria import VictoriaMetrics
from edge.teller import encoding
from tests.helpers import CloudProcess, secured_cloud
from tests.teller.conftest import _janus

#: The scripted desk's service certificate (role "cloud": reads session, writes desk).
DESK_SERVICE = "desk-script"


@pytest.fixture(autouse=True)
def aiortc_defaults() -> Iterator[None]:
    """Calls here set aiortc's codec bounds for a thin link; other tests expect its own."""
    yield
    encoding.reset()


@pytest.fixture(scope="module")
def secured(
    tmp_path_factory: pytest.TempPathFactory, victoria: VictoriaMetrics
) -> Iterator[tuple[Path, Broker, CloudProcess]]:
    services = broker_services("api") | {DESK_SERVICE: "cloud"}
    with secured_cloud(tmp_path_factory.mktemp("secured"), victoria.url, services) as stack:
        yield stack


@pytest.fixture(scope="module")
def janus_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Janus]:
    yield from _janus(tmp_path_factory.mktemp("janus"))
