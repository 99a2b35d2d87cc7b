"""Build a model bundle (the ``model.liveness`` OTA payload) from a model folder.

    python -m modeltools.build.bundle --out bank-2026.1.tar [--manifest DIR/manifest.json]
                                  [--key bank.pem] [--keys models/keys] [--no-health] [--thin]

Reads the manifest and the ONNX files it names from ``onnx/`` beside it, signs every entry
with ``--key`` if given (in the bundle only; the folder is left as it is), then checks what a
terminal will check: every signature against the public keys in ``--keys`` (what the
terminals trust) and every SHA-256, and, unless ``--no-health``, the health check on the
built-in frame (loads onnxruntime). Nothing is written if a check fails. ``--thin`` leaves
out the files the agents ship byte for byte (``models/onnx``): a bank's own classifier alone
travels, and terminals take the rest from their own folder after checking its SHA-256.
Publish the file as the fleet package ``model.liveness`` under a new version, then roll it
out to a group:

    PUT /api/v1/fleet/packages/model.liveness/<version>     (body = the bundle file)
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

from models.bundle import COMPONENT, Bundle
from models.errors import ModelError
from models.manifest import Manifest
from models.registry import DEFAULT_MANIFEST
from models.signing import DEFAULT_KEY_DIR, TrustedKeys, load_private_key, sign


def build(manifest_path: Path, key: Path | None, keys: Path, health: bool) -> Bundle:
    """The checked bundle; ModelError (or SystemExit for a missing file) says what is wrong."""
    try:
        bundle = Bundle.from_folder(manifest_path)
    except OSError as err:
        raise SystemExit(f"cannot read the model folder: {err}") from err
    if key is not None:
        private = load_private_key(key)
        signed = tuple(sign(m, private) for m in bundle.manifest.models)
        bundle = Bundle(Manifest(signed, bundle.manifest.passive_ensemble), bundle.files)
    trusted = TrustedKeys.from_dir(keys)
    bundle.verify(trusted)
    if health:
        from edge.vision.health import check_bundle  # onnxruntime only when asked

        _, report = check_bundle(bundle, trusted)
        print(
            f"health: load {report.load_s:.2f} s, one frame {report.frame_ms:.1f} ms, "
            f"bona fide on the built-in face {report.passive}"
        )
    return bundle


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="the bundle file to write")
    ap.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    ap.add_argument("--key", type=Path, help="Ed25519 private key (PEM) to sign every entry")
    ap.add_argument("--keys", type=Path, default=DEFAULT_KEY_DIR, help="keys terminals trust")
    ap.add_argument("--no-health", action="store_true", help="skip the onnxruntime check")
    ap.add_argument("--thin", action="store_true", help="leave out the models agents ship")
    args = ap.parse_args(argv)
    try:
        bundle = build(args.manifest, args.key, args.keys, not args.no_health)
    except ModelError as err:
        raise SystemExit(f"refused, nothing written: {err}") from err
    if args.thin:
        bundle = bundle.thin(DEFAULT_MANIFEST.parent / "onnx")
        print(f"thin: {len(bundle.missing)} models left to the agents' own copies")
    data = bundle.to_bytes()
    args.out.write_bytes(data)
    models = ", ".join(f"{n}@{v}" for n, v in bundle.versions.items())
    print(f"{args.out}: {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}")
    print(f"models: {models}")
    print(f"publish: PUT /api/v1/fleet/packages/{COMPONENT}/<version> with this file as body")


if __name__ == "__main__":
    main()
