"""A rejoined call's recording folder: the teller's two segments (two feeds), and empty
files Janus opened but never wrote a packet to (the first page's unused data channel),
which the archiver skips instead of dying on them."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud.media.errors import RecordingError
from cloud.media.mjr import MAGIC, MjrHeader
from cloud.media.recording import never_written, plan_recording, scan

ROOM = "s1"


def _write(folder: Path, feed: str, kind: str, mindex: int, first_us: int) -> None:
    codec = {"audio": "opus", "video": "vp8", "data": "text"}[kind]
    header = MjrHeader(kind, codec, first_us - 1000, first_us).to_bytes()
    (folder / f"{ROOM}-{feed}-{kind}-{mindex}.mjr").write_bytes(header + b"MEETECHO")


def test_both_teller_segments_are_planned_and_empty_files_skipped(tmp_path: Path) -> None:
    _write(tmp_path, "customer", "audio", 0, 1_000_000)
    _write(tmp_path, "customer", "video", 1, 1_000_000)
    _write(tmp_path, "teller-li", "audio", 0, 1_200_000)
    _write(tmp_path, "teller-li", "video", 1, 1_200_000)
    _write(tmp_path, "teller-li~1", "audio", 0, 9_000_000)
    _write(tmp_path, "teller-li~1", "video", 1, 9_000_000)
    (tmp_path / f"{ROOM}-teller-li-data-2.mjr").write_bytes(MAGIC)  # never spoken on
    (tmp_path / f"{ROOM}-teller-li~1-data-2.mjr").write_bytes(b"")
    tracks = scan(tmp_path, ROOM)
    assert sorted((t.feed, t.kind) for t in tracks) == [
        ("customer", "audio"),
        ("customer", "video"),
        ("teller-li", "audio"),
        ("teller-li", "video"),
        ("teller-li~1", "audio"),
        ("teller-li~1", "video"),
    ]
    plan = plan_recording(ROOM, tracks, tmp_path / "work", tmp_path / "out.mkv", ["customer"])
    feeds = [s.track.feed for s in plan.convert]
    assert feeds == ["customer"] * 2 + ["teller-li"] * 2 + ["teller-li~1"] * 2
    offsets = [plan.mux[i + 1] for i, a in enumerate(plan.mux) if a == "-itsoffset"]
    assert offsets == ["0.000000"] * 2 + ["0.200000"] * 2 + ["8.000000"] * 2  # in call time


def test_a_damaged_recording_is_a_recording_error(tmp_path: Path) -> None:
    assert never_written(b"") and never_written(MAGIC) and never_written(MAGIC[:4])
    assert not never_written(MAGIC + b"\x00") and not never_written(b"RIFF")
    (tmp_path / f"{ROOM}-customer-audio-0.mjr").write_bytes(MAGIC + b"\x00\x40{")
    with pytest.raises(RecordingError, match=r"customer-audio-0\.mjr"):
        scan(tmp_path, ROOM)
