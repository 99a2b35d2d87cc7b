"""Peripheral latency benchmark: ID-card read in the simulator, IC-card PAN read via pcscd.

    .venv/bin/python bench/peripherals.py [--reads 30]

- ID card: find -> select -> read base text+photo against the simulated SAM_V reader on a
  pty, output paced at 115200 baud (the 1295-byte answer alone is 112 ms on the wire).
- PIN pad: one status command round trip at 9600 baud.
- IC card: connect -> PSE -> directory -> SELECT AID -> GPO -> 3 x READ RECORD -> disconnect,
  through a real pcscd with the vsmartcard vpcd driver and the project's emulated PBOC card.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from firmware_adapters.iccard.adapter import IcCardReader
from firmware_adapters.iccard.pcscd import READER_NAME, Pcscd, free_port_pair
from firmware_adapters.iccard.vpcd import VirtualCardSlot
from firmware_adapters.idcard.adapter import IdCardReader
from firmware_adapters.idcard.simulator import IdCardSimulator
from firmware_adapters.pinpad.adapter import PinPad
from firmware_adapters.pinpad.simulator import PinPadSimulator
from firmware_adapters.pty_server import PtyServer


def summary(name: str, ms: list[float]) -> str:
    ms = sorted(ms)
    p95 = ms[min(len(ms) - 1, int(len(ms) * 0.95))]
    return (
        f"{name:<36} n={len(ms):<4} median {statistics.median(ms):7.1f} ms   "
        f"p95 {p95:7.1f} ms   min {ms[0]:7.1f} ms   max {ms[-1]:7.1f} ms"
    )


async def bench_idcard(tmp: Path, reads: int) -> list[float]:
    with PtyServer(IdCardSimulator(), tmp / "idcard.tty", 115200):
        async with IdCardReader("idcard", str(tmp / "idcard.tty"), 115200) as reader:
            await reader.read_card()  # warm-up
            return [(await reader.read_card()).latency_ms for _ in range(reads)]


async def bench_pinpad(tmp: Path, reads: int) -> list[float]:
    with PtyServer(PinPadSimulator(), tmp / "pinpad.tty", 9600):
        async with PinPad("pinpad", str(tmp / "pinpad.tty")) as pad:
            out = []
            for _ in range(reads):
                start = time.perf_counter()
                await pad.command("3")
                out.append((time.perf_counter() - start) * 1e3)
            return out


async def bench_iccard(tmp: Path, reads: int) -> tuple[list[float], float]:
    daemon = Pcscd(free_port_pair(), tmp / "pcscd").start()
    slot = VirtualCardSlot(daemon.port)
    try:
        async with IcCardReader("iccard", READER_NAME) as reader:
            await reader.wait_for_event(0.1)
            start = time.perf_counter()
            await asyncio.to_thread(slot.insert)
            while await reader.wait_for_event(2.0) != "inserted":
                pass
            insert_ms = (time.perf_counter() - start) * 1e3
            await reader.read_card()  # warm-up
            out = []
            for _ in range(reads):
                await reader.read_card()
                out.append(reader.last_latency_ms)
            return out, insert_ms
    finally:
        slot.remove()
        daemon.stop()


async def run(reads: int) -> None:
    with tempfile.TemporaryDirectory(prefix="cuntong-bench-") as tmp_name:
        tmp = Path(tmp_name)
        idcard = await bench_idcard(tmp, reads)
        pinpad = await bench_pinpad(tmp, reads)
        iccard, insert_ms = await bench_iccard(tmp, reads)
    print(f"# {platform.node()} {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}")  # fmt: skip
    print(summary("ID card find+select+read @115200", idcard))
    print(summary("PIN pad status round trip @9600", pinpad))
    print(summary("IC card PAN read via pcscd+vpcd", iccard))
    print(f"{'IC card insertion -> event':<36} {insert_ms:7.1f} ms")
    print(f"command: .venv/bin/python bench/peripherals.py --reads {reads}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=30)
    asyncio.run(run(parser.parse_args().reads))


if __name__ == "__main__":
    sys.exit(main())
