"""HSM service latency: PIN-block translation (TPK -> ZPK) and ARQC verification, p50 / p99.

    .venv/bin/python bench/hsm_latency.py [--n 500]

(Not bench/hsm.py: a script of that name would shadow the hsm package it imports.)

One client, requests one after another, against the real HSM service (SoftHSM2 token in a
fresh state folder) over loopback HTTP. PIN blocks are made with the PIN pad's own code under
the working key the HSM exported; cryptograms with the emulated card's own GENERATE AC.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import procs
from cuntong.servers.hsm import HsmServer
from firmware_adapters.iccard import apdu, emv
from firmware_adapters.iccard.card import CDOL1, PDOL, CardProfile, PbocCard
from firmware_adapters.pinpad import crypto
from firmware_adapters.pinpad.pinblock import encrypt_pin_block
from hsm import HsmClient

PAN = "6217002870012345672"


def figures(name: str, ms: list[float]) -> str:
    ms = sorted(ms)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return (
        f"{name:<28} n={len(ms):<5} p50 {statistics.median(ms):6.2f} ms   "
        f"p99 {p99:6.2f} ms   max {ms[-1]:6.2f} ms"
    )


def proofs(card: PbocCard, n: int) -> list[emv.CardProof]:
    out = []
    for _ in range(n):
        card.reset()
        card.respond(apdu.select(bytes.fromhex(card.profile.aids[0])))
        now = dt.datetime.now(dt.UTC)
        pdol = emv.pdol_data(emv.parse_dol(PDOL), now, os.urandom(4))
        aip, _ = emv.parse_gpo(apdu.Response.parse(card.respond(apdu.gpo(pdol))).data)
        data = emv.cdol_data(emv.parse_dol(CDOL1), emv.Transaction(100, os.urandom(4), now))
        answer = apdu.Response.parse(card.respond(apdu.generate_ac(apdu.ARQC, data)))
        cid, atc, ac, iad = emv.parse_generate_ac(answer.data)
        p = card.profile
        out.append(emv.CardProof(p.pan, p.pan_sequence, aip, atc, cid, ac, iad, CDOL1, data))
    return out


async def run(server: HsmServer, n: int) -> None:
    async with HsmClient(server.url, server.secret) as hsm:
        parts = [os.urandom(16), os.urandom(16)]
        tmk = bytes(a ^ b for a, b in zip(*parts, strict=True))
        await hsm.import_key("TMK:b", "TMK", [(p, crypto.key_check_value("D", p)) for p in parts])
        tpk = await hsm.generate_key("TPK:b", "TPK", under="TMK:b")
        assert tpk.encrypted is not None
        pad_key = crypto.decrypt("D", tmk, tpk.encrypted)  # what the pad does on key load
        await hsm.generate_key("ZPK:b", "ZPK")
        blocks = [encrypt_pin_block("0", pad_key, f"{i:06d}", PAN, b"") for i in range(n)]
        translate = []
        for block in blocks:
            t0 = time.perf_counter()
            await hsm.translate_pin(block, PAN, "TPK:b", "ZPK:b")
            translate.append((time.perf_counter() - t0) * 1e3)

        imk = os.urandom(16)
        halves = [os.urandom(16)]
        halves.append(bytes(a ^ b for a, b in zip(imk, halves[0], strict=True)))
        comps = [(h, crypto.key_check_value("D", h)) for h in halves]
        await hsm.import_key("IMK-AC:b", "IMK-AC", comps)
        card = PbocCard(CardProfile(imk=imk, atc=0))
        verify = []
        for proof in proofs(card, n):
            t0 = time.perf_counter()
            result = await hsm.verify_arqc("IMK-AC:b", proof)
            verify.append((time.perf_counter() - t0) * 1e3)
            assert result.verified, result
    print(figures("PIN translate TPK->ZPK", translate))
    print(figures("ARQC verify", verify))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500)
    args = parser.parse_args()
    print(f"# {platform.node()} {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    print(f"# reproduce: .venv/bin/python bench/hsm_latency.py --n {args.n}")
    with tempfile.TemporaryDirectory() as tmp:
        server = HsmServer(procs.free_port(), Path(tmp) / "hsm").start()
        try:
            asyncio.run(run(server, args.n))
        finally:
            server.stop()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
