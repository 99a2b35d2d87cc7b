"""`cuntong peripherals selftest --config FILE`: the lead wires `add_parser` into the CLI."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("peripherals", help="terminal peripherals")
    sub = parser.add_subparsers(dest="peripherals_command", required=True)
    selftest = sub.add_parser("selftest", help="open and self-test every configured device")
    selftest.add_argument("--config", type=Path, required=True, help="JSON peripheral settings")
    selftest.set_defaults(func=_selftest)


def _selftest(args: argparse.Namespace) -> None:
    from firmware_adapters.selftest import main

    if code := main(["--config", str(args.config)]):
        raise SystemExit(code)  # a failed device must fail the command
