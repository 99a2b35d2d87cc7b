"""The manifest round-trips, and a corrupted, unsigned or untrusted model is refused."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.vision.runtime import ModelSet
from models.errors import ManifestError, ModelRefused
from models.manifest import ClassifierSpec, Manifest
from models.registry import DEFAULT_MANIFEST, load_verified, read_manifest
from models.signing import TrustedKeys, sign
from modeltools.build import sign as sign_tool

SHIPPED = read_manifest()


def test_manifest_round_trips_byte_for_byte() -> None:
    raw = DEFAULT_MANIFEST.read_bytes()
    assert Manifest.parse(raw).to_bytes() == raw


def test_every_shipped_model_verifies_with_the_repo_key() -> None:
    for entry in SHIPPED.models:
        verified = load_verified(entry.name)
        assert verified.entry.signature is not None
        assert len(verified.data) > 1_000


@pytest.mark.parametrize(
    "garbage",
    [b"not json", b"[]", b'{"format": 2}', b'{"format": 1, "models": [{"name": "x"}]}'],
)
def test_garbage_manifest_raises_value_error(garbage: bytes) -> None:
    with pytest.raises(ManifestError) as info:
        Manifest.parse(garbage)
    assert isinstance(info.value, ValueError)


def _copy_models(tmp_path: Path) -> Path:
    shutil.copytree(DEFAULT_MANIFEST.parent / "onnx", tmp_path / "onnx")
    shutil.copy(DEFAULT_MANIFEST, tmp_path / "manifest.json")
    return tmp_path / "manifest.json"


def test_corrupted_model_file_is_refused(tmp_path: Path) -> None:
    manifest_path = _copy_models(tmp_path)
    detector = SHIPPED.by_role("face_detector")
    path = tmp_path / "onnx" / detector.file
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit in the weights
    path.write_bytes(bytes(data))
    with pytest.raises(ModelRefused, match=r"SHA-256 .* does not match.*corrupted"):
        ModelSet.load(manifest_path)


def test_unsigned_entry_is_refused(tmp_path: Path) -> None:
    manifest_path = _copy_models(tmp_path)
    entry = replace(SHIPPED.by_role("face_landmarks"), signature=None)
    manifest_path.write_bytes(SHIPPED.replace(entry).to_bytes())
    with pytest.raises(ModelRefused, match=r"face-mesh-468.*refused: entry is unsigned"):
        ModelSet.load(manifest_path)


def test_entry_edited_after_signing_is_refused(tmp_path: Path) -> None:
    manifest_path = _copy_models(tmp_path)
    entry = replace(SHIPPED.by_role("face_detector"), licence="MIT")
    manifest_path.write_bytes(SHIPPED.replace(entry).to_bytes())
    with pytest.raises(ModelRefused, match="does not match the entry"):
        ModelSet.load(manifest_path)


def test_bank_key_signs_and_only_trusted_keys_verify(tmp_path: Path) -> None:
    manifest_path = _copy_models(tmp_path)
    bank = Ed25519PrivateKey.generate()
    resigned = Manifest(tuple(sign(e, bank) for e in SHIPPED.models), SHIPPED.passive_ensemble)
    manifest_path.write_bytes(resigned.to_bytes())
    with pytest.raises(ModelRefused, match="not in the trusted keys"):
        ModelSet.load(manifest_path)  # the repo key alone does not trust the bank's signatures
    loaded = ModelSet.load(manifest_path, TrustedKeys.of(bank.public_key()))
    assert loaded.versions == ModelSet.load().versions


def test_classifier_spec_rejects_nonsense() -> None:
    with pytest.raises(ManifestError, match="channel_order"):
        ClassifierSpec(input_size=(64, 64), channel_order="RGBA")
    with pytest.raises(ManifestError, match="box_expand"):
        ClassifierSpec(input_size=(64, 64), box_expand=0.5)
    spec = ClassifierSpec(input_size=(80, 96), channel_order="BGR", activation="sigmoid")
    assert ClassifierSpec.from_dict(spec.to_dict()) == spec


def test_bank_rekeys_with_the_sign_tool(tmp_path: Path) -> None:
    manifest_path = _copy_models(tmp_path)
    keys = tmp_path / "keys"
    keys.mkdir()
    kid = sign_tool.keygen(tmp_path / "bank.pem", keys / "bank.pub")
    assert (tmp_path / "bank.pem").stat().st_mode & 0o777 == 0o600
    assert len(sign_tool.verify(manifest_path, keys)) == len(SHIPPED.models)  # not yet trusted
    signed = sign_tool.sign(tmp_path / "bank.pem", manifest_path, [])
    assert len(signed) == len(SHIPPED.models)
    assert sign_tool.verify(manifest_path, keys) == []
    assert {e.signature.key_id for e in read_manifest(manifest_path).models} == {kid}
    assert sign_tool.verify(DEFAULT_MANIFEST, DEFAULT_MANIFEST.parent / "keys") == []
