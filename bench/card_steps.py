"""The card and PIN steps from the desk's request to the cloud's decision, p50 / p95.

    .venv/bin/python bench/card_steps.py [--n 30]

Every part real: pcscd + vpcd with the emulated card, the PIN pad simulator on a pty (its
customer types 6 digits and enter, 10 ms a key), the HSM service over SoftHSM2, the core
simulator, the cloud app in-process on SQLite. Per round, in a fresh ``loan_repayment``
session: ``card_read`` (ask with a nonce, the terminal's ``CardStep`` reads the card and
gets the ARQC, signs; the cloud verifies the signature, the nonce in the CDOL data, the
ARQC in the HSM and asks the core for the account) and ``pin_entry`` (ask, the pad's PIN
block, signed; the HSM verifies against the core's PVV, the core counts it). The MQTT hop
between desk and terminal is not in these figures (the desk link is measured in
bench/device_steps.py).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' helpers

from common import procs
from corebank import CoreBankClient
from cuntong.servers.corebank import CoreBankServer
from cuntong.servers.hsm import HsmServer
from edge.steps.card import PinStep
from firmware_adapters.iccard.pcscd import Pcscd, free_port_pair
from firmware_adapters.iccard.vpcd import VirtualCardSlot
from firmware_adapters.pinpad.simulator import PinPadSimulator
from firmware_adapters.pty_server import PtyServer
from hsm import HsmClient
from tests.transactions.card_rig import (
    PIN,
    answer,
    ask,
    card_step,
    insert,
    issue,
    start,
    terminal_and_cloud,
)
from tests.transactions.parts import customer_types, pad


def figures(name: str, ms: list[float]) -> str:
    ms = sorted(ms)
    p95 = ms[min(len(ms) - 1, int(len(ms) * 0.95))]
    return (
        f"{name:<34} n={len(ms):<4} p50 {statistics.median(ms):7.1f} ms   "
        f"p95 {p95:7.1f} ms   max {ms[-1]:7.1f} ms"
    )


async def run(n: int, tmp: Path) -> None:
    hsm_server = HsmServer(procs.free_port(), tmp / "hsm").start()
    core_server = CoreBankServer(procs.free_port(), tmp / "core").start()
    (tmp / "cloud").mkdir()
    daemon = Pcscd(free_port_pair(), tmp / "pcscd").start()
    slot = VirtualCardSlot(daemon.port)
    try:
        with PtyServer(PinPadSimulator("123654#", 0.01), tmp / "pinpad.tty", 9600) as pty:
            async with (
                HsmClient(hsm_server.url, hsm_server.secret) as hsm,
                CoreBankClient(core_server.url, core_server.secret, timeout=10.0) as core,
            ):
                bank = await issue(pty, hsm, core, core_server)
                async with terminal_and_cloud(tmp / "cloud", bank, core_server) as (term, cloud):
                    await insert(slot, bank.card)
                    cards, card_ms, pin_ms = card_step(), [], []
                    teller = None
                    async with pad(pty) as p:
                        pins = PinStep(lambda: p, cards.pans.get)
                        customer_types(pty, PIN + "#")
                        for _ in range(n):
                            session = f"B-{uuid.uuid4().hex[:8]}"
                            teller = await start(cloud, session, "loan_repayment", teller)
                            t0 = time.perf_counter()
                            request = await ask(cloud, session, "card_read")
                            _, passed = await answer(cloud, term, request, await cards(request))
                            card_ms.append((time.perf_counter() - t0) * 1e3)
                            assert passed
                            t0 = time.perf_counter()
                            request = await ask(cloud, session, "pin_entry")
                            _, passed = await answer(cloud, term, request, await pins(request))
                            pin_ms.append((time.perf_counter() - t0) * 1e3)
                            assert passed
    finally:
        slot.remove()
        daemon.stop()
        core_server.stop()
        hsm_server.stop()
    print(figures("card_read: ask -> HSM-verified", card_ms))
    print(figures("pin_entry: ask -> HSM + core", pin_ms))
    print(f"(pin_entry includes the pad's 7 key presses at 10 ms; {platform.node()}, "
          f"{os.cpu_count()} cores; .venv/bin/python bench/card_steps.py --n {n})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(args.n, Path(tmp)))


if __name__ == "__main__":
    main()
