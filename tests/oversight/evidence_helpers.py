"""A realistic session package for the evidence tests and the benchmark."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from cloud.catalogue import load_catalogue
from cloud.evidence import package
from cloud.evidence.chain import Timeline
from cloud.evidence.keys import EvidenceKeys
from common import suite as suite_lib

START = dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.UTC)


def session_package(
    directory: Path,
    keys: EvidenceKeys,
    suite: suite_lib.Suite = suite_lib.Suite.STANDARD,
    segments: int = 3,
    segment_bytes: int = 2048,
    session_id: str = "sess-0001",
) -> Path:
    """A password-reset session: each step an event, recording segments every 10 s."""
    timeline = Timeline(suite)
    timeline.append("session_start", "t-1", START, {"terminal": "T-610102-0001"})
    files = []
    at = START
    for index in range(segments):
        at = START + dt.timedelta(seconds=10 * (index + 1))
        data = os.urandom(segment_bytes)
        name = f"recordings/seg-{index:05d}.webm"
        files.append(package.EvidenceFile(name, "recording", data))
        timeline.append(
            "recording_segment",
            "T-610102-0001",
            at,
            {"name": name, "digest": suite_lib.digest(suite, data).hex()},
        )
    for step in load_catalogue().get("password_reset").steps:
        actor = "s-1" if step == "supervisor_authorisation" else "t-1"
        at += dt.timedelta(seconds=5)
        timeline.append("step", actor, at, {"step": step, "passed": True})
    files.append(package.EvidenceFile("voucher-1.jpg", "voucher", b"\xff\xd8voucher"))
    files.append(package.EvidenceFile("esign.png", "e_signature", b"\x89PNGsignature"))
    timeline.append("session_end", "t-1", at, {"outcome": "completed"})
    doc, sealed = package.build(
        session_id=session_id,
        business="password_reset",
        operator={"teller_id": "t-1", "supervisor_id": "s-1"},
        timeline=timeline,
        files=files,
        keys=keys,
        now=at,
        serial=1,
    )
    return package.write(directory, doc, sealed)
