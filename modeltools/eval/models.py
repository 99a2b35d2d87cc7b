"""The model set an evaluation command runs: the installed manifest, or a bank's bundle.

`--bundle FILE` reads a model bundle (the `model.liveness` OTA payload; a thin one is completed
from `models/onnx` exactly as a terminal completes it) and `--keys DIR` names the public keys
to trust (default `models/keys`): the same checks a terminal makes before it runs a model.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from models.signing import DEFAULT_KEY_DIR


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--bundle", type=Path, help="a model bundle (.tar) to evaluate")
    ap.add_argument("--keys", type=Path, default=DEFAULT_KEY_DIR, help="public keys to trust")


def load(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The verified, loaded ModelSet the options name; SystemExit says why not."""
    from edge.vision.runtime import ModelSet
    from models.bundle import Bundle
    from models.errors import ModelError
    from models.registry import DEFAULT_MANIFEST
    from models.signing import TrustedKeys

    try:
        trusted = TrustedKeys.from_dir(args.keys)
        if args.bundle is None:
            return ModelSet.load(trusted=trusted)
        bundle = Bundle.parse(args.bundle.read_bytes()).complete(DEFAULT_MANIFEST.parent / "onnx")
        return ModelSet.from_bundle(bundle, trusted)
    except (OSError, ModelError) as err:
        raise SystemExit(f"refused: {err}") from err
