"""The agent's replay journal: ids survive a reload, expired ones are pruned, torn lines skipped."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from common.errors import CommandRefused
from edge.replay import JOURNAL, open_replay_cache

NOW = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)
MIN = dt.timedelta(minutes=1)


def test_admitted_ids_are_refused_after_a_reload_until_they_expire(tmp_path: Path) -> None:
    cache = open_replay_cache(tmp_path, NOW)
    cache.admit("short", NOW + MIN, NOW)
    cache.admit("long", NOW + 5 * MIN, NOW)
    with (tmp_path / JOURNAL).open("a") as fh:
        fh.write('["torn", "2026-12-01T08:0')  # a crash mid-append
    assert (tmp_path / JOURNAL).stat().st_mode & 0o777 == 0o600

    reloaded = open_replay_cache(tmp_path, NOW + 2 * MIN)
    with pytest.raises(CommandRefused) as refused:
        reloaded.admit("long", NOW + 5 * MIN, NOW + 2 * MIN)
    assert refused.value.reason == "replayed"
    reloaded.admit("short", NOW + 3 * MIN, NOW + 2 * MIN)  # expired id forgotten
    assert len(reloaded) == 2
    lines = (tmp_path / JOURNAL).read_text().splitlines()
    assert [line.split('"')[1] for line in lines] == ["long", "short"]


def test_a_journal_that_cannot_be_written_refuses_the_command(tmp_path: Path) -> None:
    cache = open_replay_cache(tmp_path, NOW)
    (tmp_path / JOURNAL).unlink()
    (tmp_path / JOURNAL).mkdir()  # appends now fail
    with pytest.raises(CommandRefused) as refused:
        cache.admit("c1", NOW + MIN, NOW)
    assert refused.value.reason == "replay_journal"
    assert len(cache) == 0
