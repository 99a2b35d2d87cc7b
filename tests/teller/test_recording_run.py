"""The subprocess half of the recording pipeline: failures surface as RecordingError.

The happy path (a real call recorded by Janus) is in test_media_integration.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cloud.media.archive import Archiver
from cloud.media.errors import RecordingError
from cloud.media.recording import RecordingResult, finish_recording, run, scan

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "teller"


async def test_run_reports_exit_status_and_missing_programs() -> None:
    assert await run(["sh", "-c", "echo hi"]) == b"hi\n"
    with pytest.raises(RecordingError, match="exited 3: boom"):
        await run(["sh", "-c", "echo boom >&2; exit 3"])
    with pytest.raises(RecordingError, match="cannot run"):
        await run(["/nonexistent/janus-pp-rec"])


async def test_empty_folder_has_nothing_to_finish(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match="no audio or video"):
        await finish_recording(tmp_path, "s1", tmp_path / "out")


async def test_recordings_without_packets_fail_the_check(tmp_path: Path) -> None:
    # A call that never got media: Janus wrote headers only. janus-pp-rec still exits 0,
    # so only the probe check stands between this and an empty "archive".
    shutil.copy(FIXTURES / "audio-opus.mjr-header", tmp_path / "s1-customer-audio-0.mjr")
    shutil.copy(FIXTURES / "video-vp8.mjr-header", tmp_path / "s1-customer-video-1.mjr")
    shutil.copy(FIXTURES / "video-vp8.mjr-header", tmp_path / "s10-customer-video-1.mjr")
    assert [t.feed for t in scan(tmp_path, "s1")] == ["customer", "customer"]
    with pytest.raises(RecordingError):
        await finish_recording(tmp_path, "s1", tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []  # no work files, no unchecked output


async def test_archiver_reports_failures_instead_of_raising(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "audio-opus.mjr-header", tmp_path / "s1-customer-audio-0.mjr")
    failed: list[str] = []

    async def on_done(room: str, result: RecordingResult) -> None:
        raise AssertionError("an empty recording must not be archived")

    async def on_error(room: str, err: RecordingError) -> None:
        failed.append(room)

    archiver = Archiver(lambda node: tmp_path, tmp_path / "out", on_done, on_error)
    assert await archiver.archive("s1", tmp_path) is None
    assert failed == ["s1"]
