"""`cuntong models …`: verify and sign the model folder, and run the evaluation tiers.

Wire in with `models.cli.add_parser(subparsers)`; each sub-command delegates to the module's
own `main(argv)`, so `python -m models.build.sign …` and `cuntong models sign …` are the same.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from models.build import sign
from models.eval import correctness, iso30107, robustness

# sub-command → (help, the module main it forwards to, argv prefix)
COMMANDS: dict[str, tuple[str, Callable[..., object], list[str]]] = {
    "verify": ("check every model's SHA-256 and signature", sign.main, ["verify"]),
    "sign": ("re-sign manifest entries with an Ed25519 key", sign.main, ["sign"]),
    "keygen": ("make an Ed25519 signing key pair", sign.main, ["keygen"]),
    "pad-report": ("ISO/IEC 30107-3 report on a labelled folder", iso30107.main, []),
    "robustness": ("score drift under simulated attacks (not APCER)", robustness.main, []),
    "correctness": ("pipeline on fixed inputs", lambda argv: correctness.main(), []),
}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("models", help="on-device vision models: trust and evaluation")
    sub = parser.add_subparsers(dest="models_command", required=True)
    for name, (text, _, _) in COMMANDS.items():
        # The target module parses its own options: with a prefix no option uses, argparse
        # hands every remaining word (including `--key …`) through untouched.
        p = sub.add_parser(name, help=text, add_help=False, prefix_chars="+")
        p.add_argument("rest", nargs="*")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    _, target, prefix = COMMANDS[args.models_command]
    target([*prefix, *args.rest])
    return 0
