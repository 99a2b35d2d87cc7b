"""Fixtures that start real servers as child processes on free loopback ports."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from common import procs
from common.errors import MissingBinary
from cuntong.servers.mosquitto import Broker, BrokerConfig
from cuntong.servers.postgres import Postgres
from cuntong.servers.victoria import VictoriaMetrics
from firmware_adapters.errors import DeviceAbsent
from firmware_adapters.iccard.pcscd import SOCKET_ENV, Pcscd, free_port_pair
from firmware_adapters.iccard.vpcd import VirtualCardSlot
from firmware_adapters.pinpad.simulator import PinPadSimulator
from firmware_adapters.pty_server import PtyServer
from provisioning import brokerplugin


@pytest.fixture(scope="session", autouse=True)
def broker_plugin_built_once(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The broker's refusal plugin compiled once for the run, not once per state folder:
    every broker the suite starts (and its child processes) loads this build."""
    built = brokerplugin.build(tmp_path_factory.mktemp("broker-plugin"))
    patch = pytest.MonkeyPatch()
    patch.setenv(brokerplugin.PLUGIN_ENV, str(built))
    try:
        yield
    finally:
        patch.undo()


@pytest.fixture
def desk_settings() -> dict[str, Any]:
    """More CloudSettings for the teller rig's cloud (``tests.teller.test_teller_app.desked``);
    a test module overrides this fixture (the core-posting page test attaches the real core
    simulator)."""
    return {}


@pytest.fixture
def service_env() -> dict[str, str]:
    """More environment for the secured test cloud of ``tests.teller.test_service``'s
    ``service`` (``CUNTONG_CLOUD_*`` settings); a test module overrides this fixture."""
    return {}


@pytest.fixture
def service_instances() -> tuple[str, ...]:
    """The cloud instances a secured test cloud's broker admits (``tests.teller.test_service``'s
    ``service``); a test with a second replica overrides it."""
    return ("api",)


@pytest.fixture
def oversight_fields() -> dict[str, Any]:
    """More ``Oversight`` fields for the teller rig's cloud (``desked``); a test module
    overrides this fixture (the high-risk browser test gives it the bank's card checks and
    the identity gateway's client)."""
    return {}


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


@pytest.fixture
def pinpad_pty(tmp_path: Path) -> Iterator[PtyServer]:
    """A simulated PIN pad at 9600 baud whose customer types 123654 then enter."""
    server = PtyServer(PinPadSimulator("123654#", 0.01), tmp_path / "pinpad.tty", 9600)
    with server:
        yield server


@pytest.fixture(scope="session", autouse=True)
def pcscd_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The private pcscd's folder, and ``PCSCLITE_CSOCK_NAME`` naming its socket from the
    first test on, before the daemon runs: libpcsclite reads that variable once per process
    (at its first call) and keeps the name. A test that touched PC/SC before
    ``pcscd_server`` started (an agent with real peripherals, a reader expected absent)
    would otherwise pin the machine's socket for the rest of the run, and every card test
    after it failed after 30 s with "pcscd never reported the card"."""
    folder = tmp_path_factory.mktemp("pcscd")
    before = os.environ.get(SOCKET_ENV)
    os.environ.update(Pcscd(0, folder, private=True).client_env())
    try:
        yield folder
    finally:
        if before is None:
            os.environ.pop(SOCKET_ENV, None)
        else:
            os.environ[SOCKET_ENV] = before


@pytest.fixture(scope="session")
def pcscd_server(pcscd_folder: Path) -> Iterator[Pcscd]:
    """The real pcscd as a child process, with vpcd listening on a free port: a private
    one (its own mount namespace, socket in its folder, ``PCSCLITE_CSOCK_NAME`` set for this
    process by ``pcscd_folder``), so pytest runs in parallel on one machine do not share
    readers and cards."""
    try:
        daemon = Pcscd(free_port_pair(), pcscd_folder, private=True).start()
    except (
        DeviceAbsent,
        MissingBinary,
    ):  # no mount namespaces here (a container): the machine's one socket
        os.environ.pop(SOCKET_ENV, None)
        daemon = Pcscd(free_port_pair(), pcscd_folder).start()
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
