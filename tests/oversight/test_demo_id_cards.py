"""The demo's ID reader holds every test identity, and an operator switches the card on it:
the reader simulator runs as ``cuntong up`` starts it for SX-00001 (its own process on a pty,
the demo deck as ``--cards``, a select file), ``cuntong demo id-card <label>`` (the command,
as a process) switches the card, the terminal's own ``id_card_read`` handler reads it over
the serial protocol and signs it, and the online check runs against the identity gateway
process holding the demo's records (``demo_identities``). The teller sees each answer of the
service through the API: a match passes; not found, a name mismatch and a deceased holder
are refused with the outcome table's words; an expired card is refused on the terminal.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud.workflow import steps
from common import procs
from cuntong import demoid
from cuntong.servers.idcheck import IdentityGateway, demo_identities
from edge.steps.idcard import IdCardStep
from firmware_adapters.idcard.adapter import IdCardReader
from firmware_adapters.idcard.photo import SimulatorPhotoDecoder
from idcheck import OUTCOMES, IdentityClient, Outcome
from provisioning import ca as ca_lib
from tests.oversight.conftest import Cloud
from tests.oversight.test_device_steps import TELLER, TID, _accept, _started
from tests.steps_rig import Terminal, enrol

KEY = b"cloud-key-for-the-demo-identity-gateway"


@pytest.fixture(scope="module")
def gateway_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IdentityGateway]:
    work = tmp_path_factory.mktemp("demo-idgw")
    gw = IdentityGateway(procs.free_port(), work, KEY, demo_identities(), hang_s=30)
    gw.start()
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture
def identity_gateway(gateway_process: IdentityGateway) -> IdentityClient:
    return IdentityClient(
        gateway_process.url, KEY, "cloud", try_timeout_s=2.0, total_timeout_s=6.0, attempts=2
    )


@pytest.fixture
def terminal(cloud: Cloud, terminal_ca: ca_lib.CertificateAuthority) -> Terminal:
    return enrol(terminal_ca, TID, cloud.clock())


@pytest.fixture
def demo_reader(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """SX-00001's ID reader simulator as ``cuntong up`` runs it: (state dir, pty link)."""
    state = tmp_path / "state"
    folder = state / "terminals" / TID
    folder.mkdir(parents=True)
    link = folder / "idcard.tty"
    argv = [sys.executable, "-m", "firmware_adapters.idcard.simulator", "--pty-link", str(link),
            *demoid.write_deck(folder)]  # fmt: skip
    proc = procs.start(argv, folder / "idcard-simulator.log")
    try:
        deadline = time.monotonic() + 30
        while not link.exists():
            assert proc.poll() is None, (folder / "idcard-simulator.log").read_text()
            assert time.monotonic() < deadline, "the ID reader simulator made no pty"
            time.sleep(0.05)
        yield state, link
    finally:
        procs.stop(proc)


def _switch(state: Path, label: str) -> str:
    """``cuntong demo id-card <label>``, the operator's command."""
    argv = [sys.executable, "-m", "cuntong", "demo", "id-card", "--state-dir", str(state), label]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


async def test_the_demo_reader_presents_each_identity_and_the_teller_sees_each_answer(
    cloud: Cloud,
    terminal: Terminal,
    identity_gateway: IdentityClient,
    demo_reader: tuple[Path, Path],
) -> None:
    state, link = demo_reader
    handler = IdCardStep(
        lambda: IdCardReader("idcard", str(link), timeout=5.0, wlt_decoder=SimulatorPhotoDecoder()),
        lambda: cloud.clock().date(),
    )

    tellers: list[object] = []

    async def call(n: int) -> tuple[object, dict[str, object]]:
        session = f"S-DEMO-{n}"
        teller = await _started(cloud, session, teller=tellers[0] if tellers else None)
        tellers[:] = [teller]
        _, request = await steps.ask(cloud.ov, session, "id_card_read", TELLER, TID, cloud.clock())
        result = terminal.sign(request, await handler(request), cloud.clock())
        _, verified, passed = await _accept(cloud, session, result)
        return teller, {"session": session, "verified": verified, "passed": passed}

    # The demo starts with the matching card on the reader: the check passes.
    teller, first = await call(1)
    assert first["passed"] is True
    r = await teller.post("/api/v1/workflow/S-DEMO-1/steps/id_online_check/run")  # type: ignore[attr-defined]
    assert r.status_code == 200 and r.json()["next_step"] == "face_match", r.text

    # The operator puts the unknown card on the reader: the teller sees the refusal.
    shown = await asyncio.to_thread(_switch, state, "not_found")
    assert "the next ID card read presents 'not_found'" in shown and "* not_found" in shown
    for n, (label, outcome) in enumerate(
        [
            ("not_found", Outcome.NOT_FOUND),
            ("mismatch", Outcome.NAME_MISMATCH),
            ("deceased", Outcome.DECEASED),
        ],
        start=2,
    ):
        if label != "not_found":
            await asyncio.to_thread(_switch, state, label)
        teller, read = await call(n)
        assert read["passed"] is True, label  # the card itself is sound
        r = await teller.post(f"/api/v1/workflow/S-DEMO-{n}/steps/id_online_check/run")  # type: ignore[attr-defined]
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["outcome"] == "rejected", (label, answer)
        assert answer["notice"] == OUTCOMES[outcome].teller_text, (label, answer)

    # An expired card never reaches the service: the terminal refuses it, with words.
    await asyncio.to_thread(_switch, state, "expired")
    _, expired = await call(9)
    assert expired["passed"] is False
    assert "expired" in expired["verified"].reason  # type: ignore[attr-defined]
