"""After a call: Janus's per-stream ``.mjr`` files → one checked Matroska file per session.

Janus records each published stream of a room into its own ``.mjr`` file (RTP packets as
received). For the archive the bank wants one standard file per session, so:

1. ``janus-pp-rec`` turns each ``.mjr`` into a playable file of the same codec
   (Opus → ``.mka``, VP8/VP9/H.264 → ``.mkv``); nothing is decoded or re-encoded.
2. ``ffmpeg -c copy`` puts all streams (customer audio+video, teller audio+video) into
   one ``.mkv``, each shifted by its first-packet time from the ``.mjr`` header so the
   two directions stay in sync, with titles saying whose stream is which.
3. ``ffprobe`` confirms the stream count, codecs and durations; SHA-256 of the file is
   computed for the audit trail.

``scan``/``plan_recording``/``check_probe`` are pure (names and headers in, argv and
verdicts out); ``finish_recording`` runs the programs.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cloud.media.errors import RecordingError
from cloud.media.mjr import HEADER_READ, MAGIC, MjrHeader
from common.errors import WireError
from janus_client.videoroom import record_base

#: janus-pp-rec output extension per codec (what it can write without transcoding).
PP_EXTENSION: Final = {
    "opus": "mka",
    "vp8": "mkv",
    "vp9": "mkv",
    "h264": "mkv",
    "h265": "mkv",
    "av1": "mp4",
    "pcmu": "wav",
    "pcma": "wav",
    "g722": "wav",
}
#: Seconds one feed's audio and video may differ before the file is suspect (a direction
#: that dropped out). Feeds themselves may differ: a transferred call has two tellers.
DURATION_SLACK: Final = 5.0


@dataclass(frozen=True, slots=True)
class Track:
    mjr: Path
    feed: str
    kind: str  # "audio" / "video"
    mindex: int
    codec: str
    first_packet_us: int


@dataclass(frozen=True, slots=True)
class Step:
    track: Track
    output: Path
    argv: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RecordingPlan:
    room: str
    convert: tuple[Step, ...]
    mux: tuple[str, ...]
    output: Path

    @property
    def expected(self) -> list[tuple[str, str]]:
        """(codec_type, codec_name) of each output stream, in order."""
        return [(s.track.kind, s.track.codec) for s in self.convert]


def track_of(room: str, path: Path, header: MjrHeader) -> Track | None:
    """The track a file holds (named as ``record_base`` says), or None for other rooms'
    files and data channels."""
    prefix = re.escape(record_base(room, ""))
    m = re.fullmatch(rf"{prefix}(?P<feed>.+)-(?P<kind>audio|video|data)-(?P<i>\d+)\.mjr", path.name)
    if m is None or header.kind == "data":
        return None
    if m["kind"] != header.kind:
        raise RecordingError(f"{path.name}: name says {m['kind']}, header says {header.kind}")
    return Track(path, m["feed"], header.kind, int(m["i"]), header.codec, header.first_packet_us)


def plan_recording(
    room: str,
    tracks: Iterable[Track],
    work_dir: Path,
    output: Path,
    feeds: Sequence[str] = (),
    pp_rec: str = "janus-pp-rec",
    ffmpeg: str = "ffmpeg",
) -> RecordingPlan:
    """Which files go together and the exact commands. ``feeds`` orders the streams
    (e.g. customer first); feeds not listed follow by name; audio before video."""
    rank = {f: i for i, f in enumerate(feeds)}
    ordered = sorted(
        tracks, key=lambda t: (rank.get(t.feed, len(rank)), t.feed, t.kind != "audio", t.mindex)
    )
    if not ordered:
        raise RecordingError(f"room {room}: no audio or video recordings")
    for t in ordered:
        if t.codec not in PP_EXTENSION:
            raise RecordingError(f"{t.mjr.name}: codec {t.codec} not supported")
    steps = tuple(
        Step(t, out, (pp_rec, str(t.mjr), str(out)))
        for t in ordered
        for out in [work_dir / f"{t.mjr.stem}.{PP_EXTENSION[t.codec]}"]
    )
    start = min(t.first_packet_us for t in ordered)
    mux = [ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-y"]
    for step in steps:
        offset = (step.track.first_packet_us - start) / 1e6
        mux += ["-itsoffset", f"{offset:.6f}", "-i", str(step.output)]
    for i in range(len(steps)):
        mux += ["-map", f"{i}:0"]
    mux += ["-c", "copy", "-metadata", f"title=teller session {room}"]
    for i, step in enumerate(steps):
        mux += [f"-metadata:s:{i}", f"title={step.track.feed} {step.track.kind}"]
    mux += ["-f", "matroska", str(output)]
    return RecordingPlan(room, steps, tuple(mux), output)


def ffprobe_argv(path: Path, ffprobe: str = "ffprobe") -> tuple[str, ...]:
    entries = "stream=index,codec_type,codec_name,duration:stream_tags=DURATION,title"
    return (ffprobe, "-v", "error", "-show_entries", entries, "-of", "json", str(path))


@dataclass(frozen=True, slots=True)
class StreamInfo:
    kind: str
    codec: str
    seconds: float
    title: str


def _seconds(stream: dict[str, Any]) -> float:
    if "duration" in stream:
        return float(stream["duration"])
    tag = stream.get("tags", {}).get("DURATION")  # Matroska keeps it as a tag
    if tag is None:
        raise RecordingError(f"stream {stream.get('index')} has no duration")
    h, m, s = tag.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def check_probe(probe: dict[str, Any], plan: RecordingPlan, min_seconds: float) -> list[StreamInfo]:
    """ffprobe's JSON against the plan: same streams in order, each long enough."""
    streams = [
        StreamInfo(
            s["codec_type"], s["codec_name"], _seconds(s), s.get("tags", {}).get("title", "")
        )
        for s in probe.get("streams", [])
    ]
    got = [(s.kind, s.codec) for s in streams]
    if got != plan.expected:
        raise RecordingError(f"{plan.output.name}: streams {got}, expected {plan.expected}")
    feed_longest: dict[str, float] = {}
    for step, s in zip(plan.convert, streams, strict=True):
        feed = step.track.feed
        feed_longest[feed] = max(feed_longest.get(feed, 0.0), s.seconds)
    for step, s in zip(plan.convert, streams, strict=True):
        longest = feed_longest[step.track.feed]
        if s.seconds < min_seconds or s.seconds < longest - DURATION_SLACK:
            raise RecordingError(
                f"{plan.output.name}: {s.title or s.kind} lasts {s.seconds:.2f}s "
                f"(its feed's longest {longest:.2f}s, minimum {min_seconds:.2f}s)"
            )
    return streams


# -- the shell: reading headers, running programs ---------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordingResult:
    path: Path
    sha256: str
    size: int
    streams: list[StreamInfo]


def never_written(head: bytes) -> bool:
    """Janus writes the magic when it opens a recording and the header with the first
    packet: a file holding no more than the magic is a stream that carried nothing (a
    data channel nobody spoke on, a teller page reloaded before it sent a message)."""
    return len(head) <= len(MAGIC) and MAGIC.startswith(head)


def scan(rec_dir: Path, room: str) -> list[Track]:
    """Tracks of one room in a recording folder (reads each file's header); empty
    recordings are skipped, a damaged one is a RecordingError."""
    tracks = []
    for path in sorted(rec_dir.glob(f"{glob_escape(record_base(room, ''))}*.mjr")):
        with path.open("rb") as f:
            head = f.read(HEADER_READ)
        if never_written(head):
            continue
        try:
            header = MjrHeader.parse(head)
        except WireError as err:
            raise RecordingError(f"{path.name}: {err}") from err
        track = track_of(room, path, header)
        if track is not None:
            tracks.append(track)
    return tracks


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


async def run(argv: Sequence[str]) -> bytes:
    """Run a program; its stdout, or RecordingError with the tail of its stderr."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        raise RecordingError(f"cannot run {argv[0]}: {exc}") from exc
    try:
        out, errout = await proc.communicate()
    except BaseException:
        # Cancelled (the app stopping mid-archive) or failed: never leave the program running
        # with its pipes open; a transport collected later, in another loop, warns and breaks.
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise
    if proc.returncode != 0:
        tail = errout.decode(errors="replace")[-600:]
        raise RecordingError(f"{Path(argv[0]).name} exited {proc.returncode}: {tail}")
    return out


async def finish_recording(
    rec_dir: Path,
    room: str,
    out_dir: Path,
    feeds: Sequence[str] = (),
    min_seconds: float = 1.0,
) -> RecordingResult:
    """Turn a finished room's recordings into ``<out_dir>/<room>.mkv``, checked and hashed.

    Intermediate files go in a work folder that is removed either way; an output that
    fails the check is removed too, so the archive only ever holds checked files.
    """
    tracks = await asyncio.to_thread(scan, rec_dir, room)
    work = out_dir / f".{room}.work"
    await asyncio.to_thread(work.mkdir, parents=True, exist_ok=True)
    plan = plan_recording(room, tracks, work, out_dir / f"{room}.mkv", feeds)
    try:
        for step in plan.convert:
            await run(step.argv)
        await run(plan.mux)
        probe = json.loads(await run(ffprobe_argv(plan.output)))
        streams = check_probe(probe, plan, min_seconds)
    except BaseException:
        await asyncio.to_thread(plan.output.unlink, missing_ok=True)
        raise
    finally:
        await asyncio.to_thread(shutil.rmtree, work, ignore_errors=True)
    digest = await asyncio.to_thread(sha256_file, plan.output)
    size = (await asyncio.to_thread(plan.output.stat)).st_size
    return RecordingResult(plan.output, digest, size, streams)
