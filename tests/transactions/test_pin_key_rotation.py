"""PIN key rotation: the HSM stages a new TPK under the terminal's TMK, the pad loads it, and the
HSM switches only on the terminal's confirmation. Real HSM service (SoftHSM2), the real serial PIN
pad simulator on a pty; the end-to-end test adds a real broker, the cloud API process (ingest,
command sender, rotation job) and an in-process agent driving the pad."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest

from common import procs
from cuntong.servers.hsm import HsmServer
from cuntong.servers.mosquitto import Broker
from cuntong.servers.victoria import VictoriaMetrics
from edge.handlers.pinpad import PinPadKeys
from firmware_adapters.errors import DeviceStatusError
from firmware_adapters.pinpad.adapter import PinPad
from firmware_adapters.pty_server import PtyServer
from hsm import HsmClient, HsmRefused
from tests.helpers import CloudProcess, start_cloud
from tests.integration.agents import make_agent, new_id
from tests.transactions.parts import components, customer_types, keyed_pad, pad

PAN = "6217002870012345672"


async def _refused(hsm: HsmClient, block: bytes, tpk: str, zpk: str) -> str:
    with pytest.raises(HsmRefused) as err:
        await hsm.translate_pin(block, PAN, tpk, zpk)
    return err.value.reason


async def test_a_staged_key_switches_only_when_promoted(
    pinpad_pty: PtyServer, hsm: HsmClient
) -> None:
    tag = uuid.uuid4().hex[:8]
    async with pad(pinpad_pty) as p:
        tpk, zpk, _pvk = await keyed_pad(p, hsm, tag)
        old_kcv = next(k.kcv for k in await hsm.keys() if k.name == tpk)
        before = await p.enter_pin(1, "0", PAN)

        staged = await hsm.stage_rotation(tpk, f"TMK:{tag}")
        assert staged.name == f"{tpk}.next" and staged.encrypted is not None
        assert await hsm.pending_kcv(tpk) == staged.kcv != old_kcv
        loaded = await p.load_working_key(0, 1, staged.encrypted, bytes.fromhex(staged.kcv))
        assert loaded[:3].hex().upper() == staged.kcv
        after = await p.enter_pin(1, "0", PAN)

    # Not confirmed yet: a block under the old key and one under the new both translate.
    assert len(await hsm.translate_pin(before.block, PAN, tpk, zpk)) == 8
    assert len(await hsm.translate_pin(after.block, PAN, tpk, zpk)) == 8

    promoted = await hsm.promote(tpk)
    assert promoted.kcv == staged.kcv and await hsm.pending_kcv(tpk) is None
    assert len(await hsm.translate_pin(after.block, PAN, tpk, zpk)) == 8
    assert await _refused(hsm, before.block, tpk, zpk) == "pin_block_invalid"
    with pytest.raises(HsmRefused) as err:
        await hsm.promote(tpk)  # nothing in flight any more
    assert err.value.reason == "key_unknown"


async def test_a_refused_key_is_discarded_and_the_old_one_kept(
    pinpad_pty: PtyServer, hsm: HsmClient
) -> None:
    tag = uuid.uuid4().hex[:8]
    async with pad(pinpad_pty) as p:
        tpk, zpk, _pvk = await keyed_pad(p, hsm, tag)
        staged = await hsm.stage_rotation(tpk, f"TMK:{tag}")
        assert staged.encrypted is not None
        tampered = bytes([staged.encrypted[0] ^ 0x01]) + staged.encrypted[1:]
        with pytest.raises(DeviceStatusError) as err:
            await p.load_working_key(0, 1, tampered, bytes.fromhex(staged.kcv))
        assert err.value.code == "E6"
        block = await p.enter_pin(1, "0", PAN)
    assert await hsm.discard_rotation(tpk)
    assert await hsm.pending_kcv(tpk) is None
    assert len(await hsm.translate_pin(block.block, PAN, tpk, zpk)) == 8


async def test_hsm_refuses_to_rotate_a_key_that_is_not_a_tpk(hsm: HsmClient) -> None:
    tag = uuid.uuid4().hex[:8]
    tmk = await hsm.import_key(f"TMK:{tag}", "TMK", components())
    zpk = await hsm.generate_key(f"ZPK:{tag}", "ZPK")
    with pytest.raises(HsmRefused) as err:
        await hsm.stage_rotation(zpk.name, tmk.name)
    assert err.value.reason == "key_kind"


# ---- through the fleet ----------------------------------------------------------------------


async def _until(check: Any, what: str) -> Any:
    async with asyncio.timeout(30):
        while True:
            found = await check()
            if found:
                return found
            await asyncio.sleep(0.2)
    raise AssertionError(what)


async def _closed_load(cloud: CloudProcess, tid: str, seen: set[str]) -> dict[str, Any] | None:
    async with cloud.client() as http:
        resp = await http.get("/api/v1/fleet/commands", params={"terminal_id": tid})
        resp.raise_for_status()
    body = resp.json()
    rows = body["items"] if isinstance(body, dict) else body
    for row in rows:
        closed = row["state"] not in ("queued", "sent")
        if row["name"] == "pinpad_load_working_key" and row["id"] not in seen and closed:
            return row  # type: ignore[no-any-return]
    return None


def _audit(db: Path, tid: str) -> list[tuple[str, str, dict[str, Any]]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT actor, action, detail FROM audit_entry WHERE target = ? ORDER BY id", (tid,)
        ).fetchall()
    return [(a, b, json.loads(c)) for a, b, c in rows]


async def test_rotation_through_the_fleet_loads_the_pad_and_switches_the_hsm(
    tmp_path: Path,
    broker: Broker,
    victoria: VictoriaMetrics,
    hsm_server: HsmServer,
    hsm: HsmClient,
    pinpad_pty: PtyServer,
) -> None:
    secret_file = tmp_path / "hsm.secret"
    secret_file.write_text(hsm_server.secret)
    db = tmp_path / "cloud.sqlite3"
    cloud = start_cloud(
        tmp_path, f"sqlite://{db}", broker.cfg.port, victoria.url,
        CUNTONG_FLEET_HSM_URL=hsm_server.url,
        CUNTONG_FLEET_HSM_SECRET_FILE=str(secret_file),
    )  # fmt: skip
    config = tmp_path / "peripherals.json"
    config.write_text(json.dumps({"pin_pad": {"kind": "pinpad", "port": str(pinpad_pty.link),
                                              "baudrate": 9600}}))  # fmt: skip
    tid = new_id("ROT")
    agent = make_agent(tmp_path, broker.cfg.port, tid, peripherals_file=config)
    run = asyncio.create_task(agent.run())
    try:
        await asyncio.wait_for(agent.connected.wait(), 10)
        p = agent.peripherals.adapters["pin_pad"]
        assert isinstance(p, PinPad)
        # The key ceremony under the names the rotation job looks for.
        tpk, zpk, _pvk = await keyed_pad(p, hsm, tid)
        old_kcv = next(k.kcv for k in await hsm.keys() if k.name == tpk)
        customer_types(pinpad_pty, "246810#")
        before = await p.enter_pin(1, "0", PAN)

        async def known() -> bool:
            async with cloud.client() as http:
                return (await http.get(f"/api/v1/terminals/{tid}")).status_code == 200

        await _until(known, "the cloud never registered the terminal")
        async with cloud.client() as http:
            assert (await http.post("/api/v1/fleet/pin-keys/rotate")).status_code == 202
        first = await _until(lambda: _closed_load(cloud, tid, set()), "no rotation closed")
        assert first["state"] == "succeeded", first
        assert "encrypted_key" in first["args"] and set(first["args"]) == {
            "encrypted_key", "kcv", "master_slot", "slot"
        }  # fmt: skip
        new_kcv = first["args"]["kcv"]

        async def switched() -> bool:
            keys = {k.name: k.kcv for k in await hsm.keys()}
            return keys.get(tpk) == new_kcv and f"{tpk}.next" not in keys

        await _until(switched, "the HSM never switched to the confirmed key")
        assert new_kcv != old_kcv
        after = await p.enter_pin(1, "0", PAN)
        assert len(await hsm.translate_pin(after.block, PAN, tpk, zpk)) == 8
        assert await _refused(hsm, before.block, tpk, zpk) == "pin_block_invalid"

        # A tampered key (one bit flipped in transit upstream of the signature): the pad
        # refuses it, the reply says so, and the HSM keeps the key the pad still has.
        staged = await hsm.stage_rotation(tpk, f"TMK:{tid}")
        assert staged.encrypted is not None
        bad = bytes([staged.encrypted[0] ^ 0x01]) + staged.encrypted[1:]
        body = {"name": "pinpad_load_working_key", "terminals": [tid],
                "args": {"encrypted_key": bad.hex(), "kcv": staged.kcv}}  # fmt: skip
        async with cloud.client() as http:
            (await http.post("/api/v1/fleet/commands", json=body)).raise_for_status()
        refused = await _until(
            lambda: _closed_load(cloud, tid, {first["id"]}), "the tampered load never closed"
        )
        assert refused["state"] == "failed"
        assert "check value" in refused["result"]["error"]

        async def discarded() -> bool:
            return await hsm.pending_kcv(tpk) is None

        await _until(discarded, "the HSM kept the refused key staged")
        assert next(k.kcv for k in await hsm.keys() if k.name == tpk) == new_kcv
        again = await p.enter_pin(1, "0", PAN)
        assert len(await hsm.translate_pin(again.block, PAN, tpk, zpk)) == 8

        actions = [(actor, action) for actor, action, _ in _audit(db, tid)]
        assert ("fleet:pin-keys", "pin_key_rotation_sent") in actions
        assert ("fleet:pin-keys", "pin_key_rotated") in actions
        assert ("fleet:pin-keys", "pin_key_rotation_failed") in actions
    finally:
        agent.stop()
        await run
        procs.stop(cloud.proc)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        ({"kcv": "ABCDEF"}, "encrypted_key"),
        ({"encrypted_key": "zz" * 16, "kcv": "ABCDEF"}, "encrypted_key"),
        ({"encrypted_key": "00" * 16, "kcv": "AB"}, "kcv"),
        ({"encrypted_key": "00" * 16, "kcv": "ABCDEF", "slot": 0}, "master key"),
        ({"encrypted_key": "00" * 16, "kcv": "ABCDEF"}, "no PIN pad"),
    ],
)
async def test_agent_refuses_a_key_load_naming_what_is_wrong(
    args: dict[str, Any], named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        await PinPadKeys({}).load_working_key(args)
