"""Model bundles for tests: the shipped models plus a bank's probe classifier, bank-signed."""

from __future__ import annotations

import hashlib
from dataclasses import replace

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from models.bundle import Bundle
from models.manifest import ClassifierSpec, Manifest, ModelEntry
from models.registry import DEFAULT_MANIFEST
from models.signing import TrustedKeys, sign
from tests.vision.test_bank_model import probe_model

PROBE = "bank-probe"


def bank_bundle(
    key: Ed25519PrivateKey, version: str = "2026.1", scale: float = 1 / 255, signed: bool = True
) -> Bundle:
    """Factory models plus `bank-probe@version` in the ensemble.

    The probe outputs each channel's mean input: with the default scale that is a 0-1
    "probability"; with scale 1.0 it is around 100, which the health check must refuse.
    """
    data = probe_model("NCHW", 32)
    entry = ModelEntry(
        name=PROBE,
        version=version,
        role="passive_classifier",
        file="bank_probe.onnx",
        sha256=hashlib.sha256(data).hexdigest(),
        licence="proprietary (bank)",
        provenance={"source": "tests/vision/bundles.py"},
        classifier=ClassifierSpec(input_size=(32, 32), scale=scale, activation="none"),
    )
    if signed:
        entry = sign(entry, key)
    factory = Bundle.from_folder(DEFAULT_MANIFEST)
    manifest = Manifest(
        (*factory.manifest.models, entry), (*factory.manifest.passive_ensemble, PROBE)
    )
    return Bundle(manifest, {**factory.files, entry.file: data})


def corrupted(bundle: Bundle) -> Bundle:
    """The same signed manifest with one byte of the probe model flipped."""
    name = bundle.manifest.get(PROBE).file
    body = bytearray(bundle.files[name])
    body[-1] ^= 0xFF
    return replace(bundle, files={**bundle.files, name: bytes(body)})


def trusting(key: Ed25519PrivateKey) -> TrustedKeys:
    """The project's key and the bank's: what a bank's terminal trusts."""
    return TrustedKeys({**TrustedKeys.from_dir().keys, **TrustedKeys.of(key.public_key()).keys})
