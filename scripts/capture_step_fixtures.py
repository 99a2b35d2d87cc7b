"""Re-make the device-step fixtures of tests/fixtures/call/ with the producers' code."""

from __future__ import annotations

import asyncio
import datetime as dt
import tempfile
from pathlib import Path

from common.wire.call import StepRequest
from firmware_adapters.idcard.simulator import sample_card
from provisioning import ca as ca_lib
from tests.steps_rig import authority, enrol, id_reader

NOW = dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.UTC)
out = Path("tests/fixtures/call")


async def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    ca = authority(tmp / "ca", dt.datetime(2026, 11, 1, tzinfo=dt.UTC))
    term = enrol(ca, "SX-00001", NOW)
    req = StepRequest(
        "5f1c0a9e7b3d4c2a8e6f0b1d3c5a7e9f",
        "id_card_read",
        "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
        {"business": "password_reset"},
    )
    (out / "desk-step.json").write_bytes(req.to_bytes())
    async with id_reader(tmp, sample_card(0)) as handler:
        done = await handler(req)
    res = term.sign(req, done, NOW)
    (out / "session-step_result.json").write_bytes(res.to_bytes())
    (out / "step-issuer.pem").write_bytes(ca_lib.cert_pem(ca.issuing))


asyncio.run(main())
