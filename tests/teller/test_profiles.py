"""Tellers' skills: validation, the CLI that creates a teller with them, the board's start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cloud.db import close_db, open_db
from cloud.sessions import profiles
from cloud.sessions.models import TellerProfile
from cloud.sessions.skills import business_table


def test_skill_arguments_and_checks() -> None:
    every = profiles.parse_skill_args(["*=3", "card_loss=5"])
    assert set(every) == set(business_table()) and every["card_loss"] == 5
    assert every["pension"] == 3
    with pytest.raises(ValueError, match="CODE=LEVEL"):
        profiles.parse_skill_args(["pension"])
    with pytest.raises(ValueError, match="unknown business type 'mortgage'"):
        profiles.check({"mortgage": 3}, ["cmn"])
    with pytest.raises(ValueError, match="unknown language 'klingon'"):
        profiles.check({"pension": 3}, ["klingon"])
    with pytest.raises(ValueError, match="1-5"):
        profiles.check({"pension": 9}, ["cmn"])
    skills = profiles.check({"agri_loan": 4}, ["cmn", "zh-shaanxi"])
    assert skills.groups == {"credit"}


def _accounts(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUNTONG_")}
    env["CUNTONG_ACCOUNT_PASSWORD"] = "teller-password-0123"
    argv = [sys.executable, "-m", "cuntong", "accounts", "--db-url", db_url, "create", *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)


async def test_cli_creates_a_teller_with_skills(tmp_path: Path) -> None:
    db_url = f"sqlite://{tmp_path / 'cloud.sqlite3'}"
    made = _accounts(
        db_url, "wang", "--role", "teller", "--skill", "*=2", "--skill", "card_loss=5",
        "--language", "cmn", "--language", "zh-shaanxi",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    refused = _accounts(db_url, "li", "--role", "teller", "--skill", "mortgage=3")
    assert refused.returncode != 0 and "mortgage" in refused.stderr
    not_teller = _accounts(db_url, "ops", "--role", "fleet_operator", "--language", "cmn")
    assert not_teller.returncode != 0 and "--role teller" in not_teller.stderr
    await open_db(db_url)
    try:
        row = await TellerProfile.get(id="wang")
        assert row.businesses["card_loss"] == 5 and row.businesses["pension"] == 2
        assert row.languages == ["cmn", "zh-shaanxi"]
        on_duty = await profiles.on_duty_skills()
        assert list(on_duty) == ["wang"]
        assert on_duty["wang"].languages == {"cmn", "zh-shaanxi"}
    finally:
        await close_db()
