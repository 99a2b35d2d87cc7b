"""The PIN-pad adapter against the simulated pad on a real pty: key chain, entry, faults."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from firmware_adapters.errors import (
    DeviceStatusError,
    DeviceTimeout,
    EntryCancelled,
    FrameChecksum,
    FrameOversized,
    FrameTruncated,
)
from firmware_adapters.pinpad import crypto
from firmware_adapters.pinpad.adapter import PinPad
from firmware_adapters.pinpad.pinblock import iso0_clear
from firmware_adapters.pinpad.simulator import PinPadSimulator
from firmware_adapters.pty_server import PtyServer
from tests.firmware_adapters.vectors import PIK_KCV, PIK_UNDER_TMK, SM4_PAN, SM4_PIN_BLOCK, TMK

PAN = SM4_PAN


def pad(server: PtyServer) -> PinPad:
    return PinPad("pinpad", str(server.link), 9600, timeout=0.6)


def customer_types(server: PtyServer, keys: str) -> None:
    sim = server.responder
    assert isinstance(sim, PinPadSimulator)
    with server.lock:
        sim.key_script = keys


async def test_sm4_key_chain_and_pin_block_match_the_published_vector(
    pinpad_pty: PtyServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    pressed: list[int] = []
    async with pad(pinpad_pty) as p:
        assert (await p.self_test()).passed
        await p.load_master_key(0, "S", TMK)
        kcv = await p.load_working_key(0, 1, PIK_UNDER_TMK, PIK_KCV)
        assert kcv == PIK_KCV
        block = await p.enter_pin(1, "S", PAN, on_key=pressed.append)
    assert block.block == SM4_PIN_BLOCK
    assert pressed == [1, 2, 3, 4, 5, 6]
    assert PAN not in repr(block) and "6230" in repr(block)
    assert "123654" not in caplog.text and PAN not in caplog.text
    assert p.health().state == "ok"


async def test_3des_format0_block_decrypts_to_the_typed_pin(pinpad_pty: PtyServer) -> None:
    tmk, pik = bytes(range(16)), bytes(range(16, 32))
    customer_types(pinpad_pty, "98<1234#")  # typo, clear, retype
    async with pad(pinpad_pty) as p:
        await p.load_master_key(2, "D", tmk)
        await p.load_working_key(2, 3, crypto.encrypt("D", tmk, pik))
        block = await p.enter_pin(3, "0", "4111111111111111", min_len=4)
    # what the bank's HSM would do with the block
    assert crypto.decrypt("D", pik, block.block) == iso0_clear("1234", "4111111111111111")
    assert block.digits_entered == 4


async def test_a_customer_who_types_later_is_heard(pinpad_pty: PtyServer) -> None:
    """Nothing scripted: the entry waits; keys pressed while it runs (the customer read the
    screen first) reach it, though the pad's loop had nothing to wake up for."""
    tmk, pik = bytes(range(16)), bytes(range(16, 32))
    sim = pinpad_pty.responder
    assert isinstance(sim, PinPadSimulator)
    customer_types(pinpad_pty, "")
    with pinpad_pty.lock, pytest.raises(ValueError, match="no PIN entry"):
        sim.press("1234#", time.monotonic())
    async with pad(pinpad_pty) as p:
        await p.load_master_key(2, "D", tmk)
        await p.load_working_key(2, 3, crypto.encrypt("D", tmk, pik))
        entry = asyncio.create_task(p.enter_pin(3, "0", "4111111111111111", min_len=4))
        for _ in range(100):
            with pinpad_pty.lock:
                if sim.entering:
                    break
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # the pad sleeps until its entry's deadline otherwise
        assert not entry.done()
        with pinpad_pty.lock:
            sim.press("1234#", time.monotonic())
        block = await asyncio.wait_for(entry, 10)
    assert crypto.decrypt("D", pik, block.block) == iso0_clear("1234", "4111111111111111")


async def test_cancel_key_timeout_and_host_cancel(pinpad_pty: PtyServer) -> None:
    async with pad(pinpad_pty) as p:
        await p.load_master_key(0, "S", TMK)
        await p.load_working_key(0, 1, PIK_UNDER_TMK)
        customer_types(pinpad_pty, "12*")
        with pytest.raises(EntryCancelled, match="cancelled"):
            await p.enter_pin(1, "S", PAN)
        customer_types(pinpad_pty, "12")
        with pytest.raises(EntryCancelled, match="timed out"):
            await p.enter_pin(1, "S", PAN, entry_timeout=1)
        customer_types(pinpad_pty, "")
        entry = asyncio.create_task(p.enter_pin(1, "S", PAN, entry_timeout=30))
        await asyncio.sleep(0.3)
        await p.cancel()
        with pytest.raises(EntryCancelled):
            await entry
        customer_types(pinpad_pty, "123654#")
        assert len((await p.enter_pin(1, "S", PAN)).block) == 16
        assert p.health().faults == 0


async def test_pad_errors_are_typed(pinpad_pty: PtyServer) -> None:
    async with pad(pinpad_pty) as p:
        with pytest.raises(DeviceStatusError) as no_key:
            await p.enter_pin(5, "S", PAN)
        assert no_key.value.code == "E2"
        with pytest.raises(DeviceStatusError) as no_master:
            await p.load_working_key(7, 1, PIK_UNDER_TMK)
        assert no_master.value.code == "E1"
        await p.load_master_key(0, "S", TMK)
        with pytest.raises(DeviceStatusError, match="key check"):
            await p.load_working_key(0, 1, PIK_UNDER_TMK, bytes(8))


async def test_faulty_frames_raise_typed_errors_and_the_pad_recovers(
    pinpad_pty: PtyServer,
) -> None:
    sim = pinpad_pty.responder
    assert isinstance(sim, PinPadSimulator)
    cases = [
        ("checksum", FrameChecksum),
        ("truncate", FrameTruncated),
        ("oversize", FrameTruncated),
        ("silent", DeviceTimeout),
    ]
    async with pad(pinpad_pty) as p:
        for fault, error in cases:
            with pinpad_pty.lock:
                sim.inject(fault)
            with pytest.raises(error):
                await p.command("3")
            assert p.health().state == "degraded"
            assert (await p.self_test()).passed
        assert p.health().faults == len(cases)


def test_oversized_declared_length_is_refused_on_encode() -> None:
    from firmware_adapters.pinpad.frame import encode

    with pytest.raises(FrameOversized):
        encode("0" * 1000)


async def test_key_events_arriving_in_one_read_are_all_counted(tmp_path: Path) -> None:
    """A fast typist and a busy host: key events and the end of entry pile up and arrive in
    one read; each is still counted (the link keeps the frames after the first)."""
    sim = PinPadSimulator("123654#", key_interval=0.0)
    pressed: list[int] = []

    def busy_host(n: int) -> None:
        pressed.append(n)
        time.sleep(0.1)  # blocks the loop on purpose: the pad's next frames queue up

    with PtyServer(sim, tmp_path / "fast.tty", 9600) as server:
        async with pad(server) as p:
            await p.load_master_key(0, "S", TMK)
            await p.load_working_key(0, 1, PIK_UNDER_TMK, PIK_KCV)
            block = await p.enter_pin(1, "S", PAN, on_key=busy_host)
    assert pressed == [1, 2, 3, 4, 5, 6]
    assert block.block == SM4_PIN_BLOCK
