"""Make keys, sign manifest entries, and verify a model folder the way a terminal does.

    python -m modeltools.build.sign keygen bank.pem --pub models/keys/bank.pub
    python -m modeltools.build.sign sign --key bank.pem [--manifest models/manifest.json] [NAME ...]
    python -m modeltools.build.sign verify [--manifest models/manifest.json] [--keys models/keys]

`keygen` writes an unencrypted PKCS#8 Ed25519 private key (mode 0600; keep it off the
terminals and out of the repository) and its `.pub`. `sign` re-signs the named entries (all
when none are named) after checking each file still matches its SHA-256. `verify` exits
non-zero if any model would be refused.
"""

from __future__ import annotations

import argparse
import hashlib
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from models.errors import ModelRefused
from models.manifest import Manifest
from models.registry import DEFAULT_MANIFEST, load_verified, model_path, read_manifest
from models.signing import DEFAULT_KEY_DIR, TrustedKeys, key_id, load_private_key, public_key_text
from models.signing import sign as sign_entry


def keygen(private_path: Path, pub_path: Path) -> str:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    pub_path.write_text(public_key_text(key.public_key()))
    return key_id(key.public_key())


def sign(key_path: Path, manifest_path: Path, names: list[str]) -> list[str]:
    manifest = read_manifest(manifest_path)
    key = load_private_key(key_path)
    done = []
    for entry in manifest.models:
        if names and entry.name not in names:
            continue
        data = model_path(entry, manifest_path).read_bytes()
        if hashlib.sha256(data).hexdigest() != entry.sha256:
            raise SystemExit(f"{entry.file} does not match its SHA-256: rebuild it, then sign")
        manifest = manifest.replace(sign_entry(entry, key))
        done.append(entry.label)
    manifest_path.write_bytes(Manifest(manifest.models, manifest.passive_ensemble).to_bytes())
    return done


def verify(manifest_path: Path, keys: Path) -> list[str]:
    """Problems found; empty when every model would load."""
    trusted = TrustedKeys.from_dir(keys)
    problems = []
    for entry in read_manifest(manifest_path).models:
        try:
            load_verified(entry.name, manifest_path, trusted)
        except ModelRefused as err:
            problems.append(str(err))
    return problems


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("keygen")
    k.add_argument("private", type=Path)
    k.add_argument("--pub", type=Path, required=True)
    s = sub.add_parser("sign")
    s.add_argument("--key", type=Path, required=True)
    s.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    s.add_argument("names", nargs="*")
    v = sub.add_parser("verify")
    v.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    v.add_argument("--keys", type=Path, default=DEFAULT_KEY_DIR)
    args = ap.parse_args(argv)
    if args.cmd == "keygen":
        print(f"key id {keygen(args.private, args.pub)}")
    elif args.cmd == "sign":
        print("signed: " + ", ".join(sign(args.key, args.manifest, args.names)))
    else:
        problems = verify(args.manifest, args.keys)
        print("\n".join(problems) or "all models verify")
        if problems:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
