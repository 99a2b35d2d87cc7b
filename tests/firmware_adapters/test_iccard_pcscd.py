"""The IC-card adapter through the real pcscd + vpcd with the project's emulated PBOC card."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

import pytest

from firmware_adapters.errors import CardAbsent, DeviceAbsent
from firmware_adapters.iccard.adapter import IcCardReader
from firmware_adapters.iccard.card import CardProfile, PbocCard
from firmware_adapters.iccard.pcscd import READER_NAME, Pcscd
from firmware_adapters.iccard.vpcd import VirtualCardSlot

PAN = "6217002870012345672"


async def inserted(reader: IcCardReader, slot: VirtualCardSlot, card: PbocCard | None = None,
                   pull_after: int | None = None) -> None:  # fmt: skip
    """Insert a card and wait until pcscd has seen it."""
    await asyncio.to_thread(slot.insert, card, pull_after)
    for _ in range(20):
        if await reader.wait_for_event(0.5) == "inserted":
            return
    pytest.fail("pcscd never reported the card")


async def test_reads_the_card_through_pcscd_with_the_pan_masked_in_logs(
    card_slot: VirtualCardSlot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with IcCardReader("iccard", READER_NAME) as reader:
        assert (await reader.self_test()).detail.endswith("card absent")
        await inserted(reader, card_slot)
        card = await reader.read_card()
        assert (await reader.self_test()).detail.endswith("card present")
    assert card.pan == PAN
    assert card.expiry == dt.date(2030, 12, 31)
    assert card.cardholder_name == "ZHANG/SANFENG"
    assert reader.last_latency_ms < 500
    assert PAN not in caplog.text
    assert "6217***********5672" in caplog.text
    assert reader.health().state == "ok"


async def test_insert_and_remove_events(card_slot: VirtualCardSlot) -> None:
    async with IcCardReader("iccard", READER_NAME) as reader:
        assert await reader.wait_for_event(0.2) is None
        await inserted(reader, card_slot)
        await asyncio.to_thread(card_slot.remove)
        events = [await reader.wait_for_event(2.0) for _ in range(2)]
        assert "removed" in events


async def test_card_without_pse_is_found_through_ppse_then_aid_list(
    card_slot: VirtualCardSlot,
) -> None:
    async with IcCardReader("iccard", READER_NAME) as reader:
        await inserted(reader, card_slot, PbocCard(CardProfile(pse=False)))
        assert (await reader.read_card()).pan == PAN
        bare = PbocCard(CardProfile(pse=False, ppse=False, aids=["A000000333010102"]))
        await inserted(reader, card_slot, bare)
        card = await reader.read_card()
        assert card.product == "credit"


async def test_card_pulled_mid_read_then_reinserted(card_slot: VirtualCardSlot) -> None:
    async with IcCardReader("iccard", READER_NAME) as reader:
        await inserted(reader, card_slot, pull_after=4)
        with pytest.raises(CardAbsent):
            await reader.read_card()
        with pytest.raises(CardAbsent):
            await reader.read_card()  # slot still empty
        await inserted(reader, card_slot)
        assert (await reader.read_card()).pan == PAN
        assert reader.health().faults == 0


async def test_unknown_reader_is_absent() -> None:
    reader = IcCardReader("iccard", "No Such Reader")
    with pytest.raises(DeviceAbsent):
        await reader.open()
    assert reader.health().state == "absent"
    assert not (await reader.self_test()).passed


async def test_pcscd_restart_is_survived(pcscd_server: Pcscd, card_slot: VirtualCardSlot) -> None:
    async with IcCardReader("iccard", READER_NAME) as reader:
        await inserted(reader, card_slot)
        await asyncio.to_thread(card_slot.remove)
        await asyncio.to_thread(pcscd_server.stop)
        with pytest.raises(DeviceAbsent):
            await reader.read_card()
        assert reader.health().state == "absent"
        await asyncio.to_thread(pcscd_server.start)
        await inserted(reader, card_slot)
        assert (await reader.read_card()).pan == PAN
        assert reader.health().state == "ok"
