"""`cuntong models …`: verify, sign and bundle the model folder; run the evaluation tiers.

Wire in with `modeltools.cli.add_parser(subparsers)`; each sub-command delegates to the module's
own `main(argv)`, so `python -m modeltools.build.sign …` and `cuntong models sign …` are the same.
"""

from __future__ import annotations

import argparse
import importlib

# sub-command → (help, the module whose main it forwards to, argv prefix). Modules are
# imported only when their command runs: they pull in onnxruntime and OpenCV (~100 MB), which
# every other `cuntong` process (the edge agent above all) must not pay for.
COMMANDS: dict[str, tuple[str, str, list[str]]] = {
    "verify": ("check every model's SHA-256 and signature", "modeltools.build.sign", ["verify"]),
    "sign": ("re-sign manifest entries with an Ed25519 key", "modeltools.build.sign", ["sign"]),
    "keygen": ("make an Ed25519 signing key pair", "modeltools.build.sign", ["keygen"]),
    "bundle": (
        "build a model bundle, the model.liveness OTA package",
        "modeltools.build.bundle",
        [],
    ),
    "pad-report": ("ISO/IEC 30107-3 report on a labelled folder", "modeltools.eval.iso30107", []),
    "score": (
        "each passive model's raw output, crop and the ensemble score on images",
        "modeltools.eval.score",
        [],
    ),
    "planarity": (
        "APCER/BPCER of the planarity check on rendered attacks",
        "modeltools.eval.planarity",
        [],
    ),
    "robustness": (
        "score drift under simulated attacks (not APCER)",
        "modeltools.eval.robustness",
        [],
    ),
    "mean-shape": (
        "rebuild (or --check) the mean face shape of the rendered 3D heads",
        "modeltools.eval.mean_shape",
        [],
    ),
    "correctness": ("pipeline on fixed inputs", "modeltools.eval.correctness", []),
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
    _, module, prefix = COMMANDS[args.models_command]
    main = importlib.import_module(module).main
    if args.models_command == "correctness":
        main()
    else:
        main([*prefix, *args.rest])
    return 0
