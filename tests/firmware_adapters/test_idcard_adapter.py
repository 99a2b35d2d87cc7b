"""The ID-card adapter against the simulated reader on a real pty (pyserial end to end)."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import pytest

from firmware_adapters.errors import (
    CardAbsent,
    DeviceAbsent,
    DeviceStatusError,
    DeviceTimeout,
    FrameChecksum,
    FrameOversized,
    FrameTruncated,
)
from firmware_adapters.idcard.adapter import IdCardReader
from firmware_adapters.idcard.simulator import IdCardSimulator, card_from_json, sample_card
from firmware_adapters.pty_server import PtyServer


def reader(server: PtyServer, timeout: float = 0.6) -> IdCardReader:
    return IdCardReader("idcard", str(server.link), 115200, timeout=timeout)


def sim(server: PtyServer) -> IdCardSimulator:
    assert isinstance(server.responder, IdCardSimulator)
    return server.responder


async def test_reads_a_card_and_logs_only_masked_numbers(
    idcard_pty: PtyServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with reader(idcard_pty) as r:
        assert (await r.self_test()).passed
        record = await r.read_card()
    expected = sample_card(0)
    assert record.text == expected.text
    assert record.photo_wlt == expected.photo_wlt
    assert record.serial == expected.serial
    # 1295 bytes at 115200 baud take 112 ms on the wire
    assert record.latency_ms > 100
    assert expected.text.id_number not in caplog.text
    assert "6101**********" in caplog.text
    assert r.health().state == "ok"


async def test_faulty_frames_raise_typed_errors_and_the_reader_recovers(
    idcard_pty: PtyServer,
) -> None:
    cases = [
        ("checksum", FrameChecksum),
        ("truncate", FrameTruncated),
        ("oversize", FrameOversized),
        ("silent", DeviceTimeout),
        ("garbage", DeviceTimeout),
    ]
    async with reader(idcard_pty) as r:
        for fault, error in cases:
            with idcard_pty.lock:
                sim(idcard_pty).inject("read_base", fault)
            with pytest.raises(error):
                await r.read_card()
            assert r.health().state in ("degraded", "fault")
            assert (await r.read_card()).text == sample_card(0).text
            assert r.health().state == "ok"
        health = r.health()
    assert health.faults == len(cases)
    assert health.recoveries == len(cases)


async def test_three_faults_in_a_row_mark_the_reader_faulty(idcard_pty: PtyServer) -> None:
    async with reader(idcard_pty, timeout=0.3) as r:
        for n in range(3):
            with idcard_pty.lock:
                sim(idcard_pty).inject("status", "silent")
            assert not (await r.self_test()).passed
            assert r.health().state == ("fault" if n == 2 else "degraded")
        assert (await r.self_test()).passed


async def test_card_pulled_mid_read_then_reinserted(idcard_pty: PtyServer) -> None:
    async with reader(idcard_pty) as r:
        with idcard_pty.lock:
            sim(idcard_pty).inject("read_base", "pulled")
        with pytest.raises(CardAbsent) as pulled:
            await r.read_card()
        assert pulled.value.code == 0x41
        with pytest.raises(CardAbsent) as empty:
            await r.read_card()
        assert empty.value.code == 0x80
        with idcard_pty.lock:
            sim(idcard_pty).insert(sample_card(1))
        assert (await r.read_card()).text == sample_card(1).text
        # a customer pulling the card is not a reader fault
        assert r.health().faults == 0


async def test_unknown_status_is_a_typed_status_error(idcard_pty: PtyServer) -> None:
    async with reader(idcard_pty) as r:
        with pytest.raises(DeviceStatusError) as err:
            await r.transact("read_extra_address")
        assert err.value.code == 0x21


async def test_unplug_gives_absent_and_replug_recovers(tmp_path: Path) -> None:
    link = tmp_path / "idcard.tty"
    server = PtyServer(IdCardSimulator(), link).start()
    r = reader(server)
    await r.open()
    assert (await r.read_card()).text == sample_card(0).text
    server.stop()  # the cable is pulled
    with pytest.raises(DeviceAbsent):
        await r.read_card()
    with pytest.raises(DeviceAbsent):
        await r.read_card()
    assert r.health().state == "absent"
    server = PtyServer(IdCardSimulator(), link).start()
    try:
        assert (await r.read_card()).text == sample_card(0).text
        assert r.health().state == "ok"
    finally:
        await r.close()
        server.stop()


async def test_missing_port_is_absent(tmp_path: Path) -> None:
    r = reader(PtyServer(IdCardSimulator(), tmp_path / "nothing"))
    with pytest.raises(DeviceAbsent):
        await r.open()
    assert r.health().state == "absent"
    result = await r.self_test()
    assert not result.passed
    assert "DeviceAbsent" in result.detail


async def test_simulator_runs_as_a_process(tmp_path: Path) -> None:
    link = tmp_path / "sim.tty"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "firmware_adapters.idcard.simulator",
        "--pty-link",
        str(link),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        banner = await asyncio.wait_for(proc.stdout.readline(), 10)
        assert b"simulator on" in banner
        async with IdCardReader("idcard", str(link)) as r:
            record = await r.read_card()
        assert record.text.id_number == sample_card(0).text.id_number
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 10) == 0


async def test_the_select_file_changes_the_card_for_the_next_read(tmp_path: Path) -> None:
    """An operator's choice (``--select-file``, what ``cuntong demo id-card`` writes) is
    read at the next card search: a label, an index, ``none``; an unknown one changes
    nothing."""
    choice = tmp_path / "select"
    cards = [
        card_from_json({"label": "match", "index": 0}),
        card_from_json({"label": "deceased", "index": 2}),
    ]
    with PtyServer(IdCardSimulator(cards, choice), tmp_path / "idcard.tty") as server:
        async with reader(server, timeout=2.0) as r:
            assert (await r.read_card()).text.name == "王美娜"  # no file yet: the first
            choice.write_text("deceased\n")
            assert (await r.read_card()).text.name == "李秀英"
            choice.write_text("nobody")  # unknown: the card stays
            assert (await r.read_card()).text.name == "李秀英"
            choice.write_text("0")
            assert (await r.read_card()).text.name == "王美娜"
            choice.write_text("none")
            with pytest.raises(CardAbsent):
                await r.read_card()
