"""PIN through the key hierarchy: the real serial PIN pad simulator and the HSM service over
SoftHSM2. The master key goes in by two components, the working key comes from the HSM under
it, the pad's format 0 block is translated to the zone key and verified inside the HSM."""

from __future__ import annotations

import uuid

import httpx
import pytest
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from cuntong.servers.hsm import HsmServer
from firmware_adapters.errors import DeviceStatusError
from firmware_adapters.pty_server import PtyServer
from hsm import HsmClient, HsmRefused
from tests.transactions.parts import components, customer_types, keyed_pad, pad

PAN = "6217002870012345672"


async def test_pin_block_from_the_pad_is_translated_and_verified_in_the_hsm(
    pinpad_pty: PtyServer, hsm: HsmClient, hsm_server: HsmServer
) -> None:
    tag = uuid.uuid4().hex[:8]
    async with pad(pinpad_pty) as p:
        tpk, zpk, pvk = await keyed_pad(p, hsm, tag)
        customer_types(pinpad_pty, "731946#")
        first = await p.enter_pin(1, "0", PAN)
        pvv = await hsm.make_pvv(first.block, PAN, tpk, pvk)  # the issuer stores this
        second = await p.enter_pin(1, "0", PAN)
        customer_types(pinpad_pty, "731947#")
        wrong = await p.enter_pin(1, "0", PAN)

    zone_block = await hsm.translate_pin(second.block, PAN, tpk, zpk)
    assert zone_block != second.block and len(zone_block) == 8
    # the translated block carries the same PIN: it verifies under the zone key
    assert await hsm.verify_pin(zone_block, PAN, zpk, pvk, pvv)
    assert await hsm.verify_pin(second.block, PAN, tpk, pvk, pvv)
    assert not await hsm.verify_pin(wrong.block, PAN, tpk, pvk, pvv)
    # the clear PIN appears in no log of the service
    assert "731946" not in (hsm_server.state_dir / "hsm.log").read_text()


async def test_block_under_another_key_is_refused(pinpad_pty: PtyServer, hsm: HsmClient) -> None:
    tag = uuid.uuid4().hex[:8]
    async with pad(pinpad_pty) as p:
        tpk, zpk, _pvk = await keyed_pad(p, hsm, tag)
        # a rogue working key (same master key, another TPK) in the pad's slot 1
        rogue = await hsm.generate_key(f"TPK:{tag}-rogue", "TPK", under=f"TMK:{tag}")
        assert rogue.encrypted is not None
        await p.load_working_key(0, 1, rogue.encrypted, bytes.fromhex(rogue.kcv))
        block = await p.enter_pin(1, "0", PAN)
    with pytest.raises(HsmRefused) as err:
        await hsm.translate_pin(block.block, PAN, tpk, zpk)
    assert err.value.reason == "pin_block_invalid"


async def test_pad_refuses_a_component_or_working_key_with_the_wrong_check_value(
    pinpad_pty: PtyServer, hsm: HsmClient
) -> None:
    tag = uuid.uuid4().hex[:8]
    async with pad(pinpad_pty) as p:
        tpk, _zpk, _pvk = await keyed_pad(p, hsm, tag)
        (c1, k1), (c2, _k2) = components()
        with pytest.raises(DeviceStatusError) as err:
            await p.load_master_key_components(0, "D", ((c1, k1), (c2, b"\x00\x00\x00")))
        assert err.value.code == "E6"
        other = await hsm.generate_key(f"TPK:{tag}-2", "TPK", under=f"TMK:{tag}")
        assert other.encrypted is not None
        with pytest.raises(DeviceStatusError):
            await p.load_working_key(0, 1, other.encrypted, b"\x01\x02\x03")
        # the pad kept its master and working keys: the old TPK still makes good blocks
        block = await p.enter_pin(1, "0", PAN)
    zpk = await hsm.generate_key(f"ZPK:{tag}-b", "ZPK")
    assert len(await hsm.translate_pin(block.block, PAN, tpk, zpk.name)) == 8


async def test_hsm_refuses_a_component_with_the_wrong_check_value(hsm: HsmClient) -> None:
    (c1, k1), (c2, _k2) = components()
    with pytest.raises(HsmRefused) as err:
        await hsm.import_key("TMK:bad", "TMK", [(c1, k1), (c2, b"\xab\xcd\xef")])
    assert err.value.reason == "kcv_mismatch"
    assert "TMK:bad" not in {k.name for k in await hsm.keys()}


async def test_new_pin_and_confirmation_are_checked_inside_the_hsm(
    pinpad_pty: PtyServer, hsm: HsmClient
) -> None:
    tag = uuid.uuid4().hex[:8]
    async with pad(pinpad_pty) as p:
        tpk, _zpk, pvk = await keyed_pad(p, hsm, tag)
        blocks = {}
        for keys in ("480257#", "480258#", "111111#"):
            customer_types(pinpad_pty, keys)
            blocks[keys] = (await p.enter_pin(1, "0", PAN)).block
        customer_types(pinpad_pty, "480257#")
        again = (await p.enter_pin(1, "0", PAN)).block
    pvv = await hsm.change_pin(blocks["480257#"], again, PAN, tpk, pvk)
    assert await hsm.verify_pin(again, PAN, tpk, pvk, pvv)
    with pytest.raises(HsmRefused) as err:
        await hsm.change_pin(blocks["480257#"], blocks["480258#"], PAN, tpk, pvk)
    assert err.value.reason == "pin_mismatch"
    with pytest.raises(HsmRefused) as err:
        await hsm.change_pin(blocks["111111#"], blocks["111111#"], PAN, tpk, pvk)
    assert err.value.reason == "pin_weak"


async def test_sm4_path_answers_its_documented_limit(hsm: HsmClient) -> None:
    with pytest.raises(HsmRefused) as err:
        await hsm.generate_key("ZPK:sm4", "ZPK", alg="SM4")
    assert (err.value.reason, err.value.status) == ("sm4_unsupported", 501)
    with pytest.raises(HsmRefused) as err:
        await hsm.translate_pin(bytes(16), PAN, "TPK:x", "ZPK:y", fmt="S")
    assert err.value.reason == "sm4_unsupported"


async def test_bad_requests_name_what_is_wrong(hsm_server: HsmServer, hsm: HsmClient) -> None:
    async with HsmClient(hsm_server.url, "not-the-secret") as stranger:
        with pytest.raises(HsmRefused) as err:
            await stranger.keys()
        assert (err.value.reason, err.value.status) == ("unauthorised", 401)
    with pytest.raises(HsmRefused) as err:
        await hsm.translate_pin(bytes(8), "62170028700123456X", "TPK:x", "ZPK:y")
    assert err.value.status == 422 and "pan" in err.value.detail
    with pytest.raises(HsmRefused) as err:
        await hsm.translate_pin(bytes(8), PAN, "TPK:nothing", "ZPK:y")
    assert (err.value.reason, err.value.status) == ("key_unknown", 404)
    async with httpx.AsyncClient(base_url=hsm_server.url) as http:
        resp = await http.post(
            "/v1/keys/generate",
            json={"name": "x", "kind": "TPK"},
            headers={"Authorization": f"Bearer {hsm_server.secret}"},
        )
    assert resp.status_code == 422 and resp.json()["reason"] == "bad_request"


def reference_offset(pvk: bytes, pan: str, pin: str) -> str:
    """IBM 3624 offset written straight from its definition, outside the HSM: encrypt the
    validation data (12 PAN digits before the check digit, F-padded) under the PVK, decimalise
    with 0123456789012345, subtract digit by digit mod 10."""
    cipher = Cipher(TripleDES(pvk + pvk[:8]), modes.ECB())
    enc = cipher.encryptor().update(bytes.fromhex(PAN[-13:-1] + "FFFF")).hex()
    natural = ["0123456789012345"[int(c, 16)] for c in enc[: len(pin)]]
    return "".join(str((int(p) - int(n)) % 10) for p, n in zip(pin, natural, strict=True))


async def test_the_stored_value_is_the_ibm_3624_offset(
    pinpad_pty: PtyServer, hsm: HsmClient
) -> None:
    """A PVK whose clear value the test knows (loaded by two components): the HSM's value is
    exactly the IBM 3624 offset of the PIN the customer typed, and says nothing else."""
    tag = uuid.uuid4().hex[:8]
    parts = components()
    pvk = await hsm.import_key(f"PVK:known-{tag}", "PVK", parts)
    clear_pvk = bytes(a ^ b for a, b in zip(parts[0][0], parts[1][0], strict=True))
    async with pad(pinpad_pty) as p:
        tpk, _zpk, _pvk = await keyed_pad(p, hsm, tag)
        customer_types(pinpad_pty, "731946#")
        block = await p.enter_pin(1, "0", PAN)
        offset = await hsm.make_pvv(block.block, PAN, tpk, pvk.name)
        customer_types(pinpad_pty, "8520#")  # a 4-digit PIN gets a 4-digit offset
        short = await p.enter_pin(1, "0", PAN, min_len=4)
        short_offset = await hsm.make_pvv(short.block, PAN, tpk, pvk.name)
    assert offset == reference_offset(clear_pvk, PAN, "731946") and len(offset) == 6
    assert short_offset == reference_offset(clear_pvk, PAN, "8520") and len(short_offset) == 4
    assert await hsm.verify_pin(block.block, PAN, tpk, pvk.name, offset)
    assert not await hsm.verify_pin(block.block, PAN, tpk, pvk.name, short_offset)
    with pytest.raises(HsmRefused) as err:  # the scheme before offsets: 8 hex digits
        await hsm.verify_pin(block.block, PAN, tpk, pvk.name, "0A1B2C3D")
    assert err.value.status == 422
