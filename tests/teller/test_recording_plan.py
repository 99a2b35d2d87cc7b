"""The pure half of the recording pipeline: .mjr headers, grouping, commands, probe checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud.media.errors import RecordingError
from cloud.media.mjr import MjrHeader
from cloud.media.recording import (
    RecordingPlan,
    Track,
    check_probe,
    ffprobe_argv,
    plan_recording,
    track_of,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "teller"


@pytest.mark.parametrize(
    ("name", "kind", "codec"),
    [("audio-opus.mjr-header", "audio", "opus"), ("video-vp8.mjr-header", "video", "vp8")],
)
def test_captured_headers_round_trip(name: str, kind: str, codec: str) -> None:
    raw = (FIXTURES / name).read_bytes()
    header = MjrHeader.parse(raw + b"\x00RTP packets follow")
    assert (header.kind, header.codec) == (kind, codec)
    assert header.first_packet_us > header.created_us > 1_700_000_000_000_000
    assert header.to_bytes() == raw


@pytest.mark.parametrize(
    "raw",
    [
        b"MJR00001\x00\x02{}",  # legacy format
        b"MJR00002\x00",  # no length
        b"MJR00002\x00\x40{}",  # length past the end
        b"MJR00002\x00\x02{]",  # not JSON
        b'MJR00002\x00\x28{"t": "x", "c": "vp8", "s": 1, "u": 2}    ',  # unknown kind
        b'MJR00002\x00\x0c{"t": "a"}  ',  # missing fields
        b"",
    ],
)
def test_garbage_headers_are_refused(raw: bytes) -> None:
    with pytest.raises(ValueError):
        MjrHeader.parse(raw)


def header(kind: str, codec: str, first: int) -> MjrHeader:
    return MjrHeader(kind, codec, first - 1000, first)


@pytest.mark.parametrize(
    ("name", "hdr", "expected"),
    [
        ("sess-1-customer-audio-0.mjr", header("audio", "opus", 5), ("customer", "audio", 0)),
        ("sess-1-teller-7-video-1.mjr", header("video", "vp8", 5), ("teller-7", "video", 1)),
        ("sess-10-customer-audio-0.mjr", header("audio", "opus", 5), None),  # another room
        ("sess-1-customer-data-2.mjr", header("data", "text", 5), None),
        ("unrelated.mjr", header("audio", "opus", 5), None),
    ],
)
def test_track_names(name: str, hdr: MjrHeader, expected: tuple[str, str, int] | None) -> None:
    track = track_of("sess-1", Path("/rec") / name, hdr)
    assert (None if track is None else (track.feed, track.kind, track.mindex)) == expected


def test_name_and_header_must_agree() -> None:
    with pytest.raises(RecordingError):
        track_of("s", Path("s-customer-audio-0.mjr"), header("video", "vp8", 1))


def tracks() -> list[Track]:
    rows = [
        ("teller", "video", 1, "vp8", 2_500_000),
        ("customer", "video", 1, "vp8", 1_040_000),
        ("teller", "audio", 0, "opus", 2_480_000),
        ("customer", "audio", 0, "opus", 1_000_000),
    ]
    return [
        Track(Path(f"/rec/s1-{feed}-{kind}-{i}.mjr"), feed, kind, i, codec, first)
        for feed, kind, i, codec, first in rows
    ]


def test_plan_orders_streams_and_aligns_them() -> None:
    plan = plan_recording(
        "s1", tracks(), Path("/work"), Path("/out/s1.mkv"), feeds=["customer", "teller"]
    )
    assert [s.track.mjr.name for s in plan.convert] == [
        "s1-customer-audio-0.mjr",
        "s1-customer-video-1.mjr",
        "s1-teller-audio-0.mjr",
        "s1-teller-video-1.mjr",
    ]
    assert plan.convert[0].argv == (
        "janus-pp-rec",
        "/rec/s1-customer-audio-0.mjr",
        "/work/s1-customer-audio-0.mka",
    )
    assert plan.convert[1].output == Path("/work/s1-customer-video-1.mkv")
    mux = list(plan.mux)
    assert mux[0] == "ffmpeg" and mux[-1] == "/out/s1.mkv"
    inputs = [(mux[i + 1], mux[i + 3]) for i, a in enumerate(mux) if a == "-itsoffset"]
    assert inputs == [
        ("0.000000", "/work/s1-customer-audio-0.mka"),
        ("0.040000", "/work/s1-customer-video-1.mkv"),
        ("1.480000", "/work/s1-teller-audio-0.mka"),
        ("1.500000", "/work/s1-teller-video-1.mkv"),
    ]
    assert [mux[i + 1] for i, a in enumerate(mux) if a == "-map"] == ["0:0", "1:0", "2:0", "3:0"]
    assert mux[mux.index("-c") + 1] == "copy"  # never transcode
    assert "-metadata:s:3" in mux and mux[mux.index("-metadata:s:3") + 1] == "title=teller video"
    assert plan.expected == [("audio", "opus"), ("video", "vp8")] * 2


def test_unlisted_feeds_follow_by_name_and_bad_input_is_refused() -> None:
    plan = plan_recording("s1", tracks(), Path("/w"), Path("/o.mkv"))
    assert [s.track.feed for s in plan.convert] == ["customer"] * 2 + ["teller"] * 2
    with pytest.raises(RecordingError, match="no audio or video"):
        plan_recording("s1", [], Path("/w"), Path("/o.mkv"))
    odd = Track(Path("/rec/s1-x-audio-0.mjr"), "x", "audio", 0, "speex", 1)
    with pytest.raises(RecordingError, match="speex"):
        plan_recording("s1", [odd], Path("/w"), Path("/o.mkv"))
    assert ffprobe_argv(Path("/o.mkv"))[-1] == "/o.mkv"


def probe(*durations: str) -> dict[str, object]:
    kinds = [("audio", "opus"), ("video", "vp8")] * 2
    return {
        "streams": [
            {"index": i, "codec_type": k, "codec_name": c, "tags": {"DURATION": d}}
            for i, ((k, c), d) in enumerate(zip(kinds, durations, strict=False))
        ]
    }


@pytest.fixture
def plan() -> RecordingPlan:
    return plan_recording("s1", tracks(), Path("/w"), Path("/o.mkv"), ["customer", "teller"])


def test_probe_accepts_a_good_file(plan: RecordingPlan) -> None:
    ok = probe("00:01:03.240000000", "00:01:03.200000000", "00:01:01.8", "00:01:01.7")
    streams = check_probe(ok, plan, min_seconds=1)
    assert [round(s.seconds, 2) for s in streams] == [63.24, 63.2, 61.8, 61.7]
    # Feeds may differ in length (the teller joined later, or was transferred in).
    later = probe("00:01:03", "00:01:03", "00:00:20", "00:00:19")
    assert [s.seconds for s in check_probe(later, plan, 1)] == [63, 63, 20, 19]
    with_duration = {"streams": [{**s, "duration": "2.5"} for s in ok["streams"]]}  # type: ignore[attr-defined]
    assert {s.seconds for s in check_probe(with_duration, plan, 1)} == {2.5}


@pytest.mark.parametrize(
    ("durations", "match"),
    [
        (("00:00:03.2", "00:00:03.2", "00:00:03.1"), "streams"),  # one stream lost
        (("00:00:00.3", "00:00:00.3", "00:00:00.3", "00:00:00.3"), "minimum"),  # too short
        (("00:01:00", "00:01:00", "00:01:00", "00:00:40"), "longest"),  # teller video dropped
    ],
)
def test_probe_refuses_bad_files(
    plan: RecordingPlan, durations: tuple[str, ...], match: str
) -> None:
    with pytest.raises(RecordingError, match=match):
        check_probe(probe(*durations), plan, min_seconds=1)
