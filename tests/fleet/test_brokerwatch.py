"""Following a broker log like ``tail -F``: new lines only, across truncation and rotation."""

from __future__ import annotations

import os
from pathlib import Path

from fleet.brokerwatch import LogFollower


def test_follows_appends_truncation_and_rotation(tmp_path: Path) -> None:
    log = tmp_path / "mosquitto.log"
    log.write_text("old line\n")
    f = LogFollower(log)
    assert f.read() == []  # what was there before is old news
    with log.open("a") as out:
        out.write("one\ntw")
    assert f.read() == ["one"]  # a half-written line waits for its end
    with log.open("a") as out:
        out.write("o\n")
    assert f.read() == ["two"]
    log.write_text("cut\n")  # copytruncate: shorter than where we were
    assert f.read() == ["cut"]
    os.rename(log, tmp_path / "mosquitto.log.1")  # rotation: a new file under the name
    log.write_text("new file\n")
    assert f.read() == ["new file"]
    f.close()


def test_a_log_that_appears_later_is_read_from_its_start(tmp_path: Path) -> None:
    log = tmp_path / "later.log"
    f = LogFollower(log)
    assert f.read() == []
    log.write_text("first\n")
    assert f.read() == ["first"]
    f.close()
