"""`cuntong models …` forwards to the module entry points."""

from __future__ import annotations

import argparse

import pytest

from modeltools import cli


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="cuntong")
    cli.add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_verify_runs_on_the_shipped_models(capsys: pytest.CaptureFixture[str]) -> None:
    args = _parse(["models", "verify"])
    assert args.func(args) == 0
    assert "all models verify" in capsys.readouterr().out


def test_options_pass_through(tmp_path) -> None:
    args = _parse(["models", "verify", "--keys", str(tmp_path)])
    with pytest.raises(SystemExit) as info:
        args.func(args)  # no trusted keys in an empty folder: every model refused
    assert info.value.code == 1
