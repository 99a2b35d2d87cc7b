"""Model bundles: the tar format, refusals, and the health check on real onnxruntime."""

from __future__ import annotations

import argparse
import hashlib
import io
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.liveness import SHIPPED
from edge.vision import health
from models.bundle import Bundle
from models.errors import BundleError, ModelRefused, Unhealthy
from models.registry import DEFAULT_MANIFEST
from models.signing import TrustedKeys, key_id, public_key_text, sign
from modeltools import cli
from modeltools.build import bundle as bundle_cli
from tests.vision.bundles import PROBE, bank_bundle, corrupted, trusting

BANK = Ed25519PrivateKey.generate()


def _tar(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for info, body in members:
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return out.getvalue()


def test_bundle_round_trips_byte_for_byte() -> None:
    b = bank_bundle(BANK)
    raw = b.to_bytes()
    assert Bundle.parse(raw) == b
    assert Bundle.parse(raw).to_bytes() == raw == bank_bundle(BANK).to_bytes()  # deterministic
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        names = tar.getnames()
    assert names[0] == "manifest.json" and all(n.startswith("onnx/") for n in names[1:])
    assert b.versions[PROBE] == "2026.1" and len(b.versions) == 4


def _symlink() -> tarfile.TarInfo:
    info = tarfile.TarInfo("onnx/x.onnx")
    info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
    return info


GOOD = Bundle.from_folder(DEFAULT_MANIFEST)
MANIFEST = GOOD.manifest.to_bytes()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"not a tar at all" * 100, "not a model bundle"),
        (_tar((tarfile.TarInfo("onnx/a.onnx"), b"x")), "no manifest.json"),
        (_tar((tarfile.TarInfo("manifest.json"), b"{}")), "manifest format"),
        (_tar((tarfile.TarInfo("../evil"), b"x")), "neither manifest.json nor onnx/<file>"),
        (_tar((tarfile.TarInfo("onnx/sub/a.onnx"), b"x")), "neither"),
        (_tar((_symlink(), b"")), "not a regular file"),
        (_tar(*((tarfile.TarInfo(f"onnx/{i}.onnx"), b"x") for i in range(18))), "more than 16"),
        (
            _tar(
                (tarfile.TarInfo("manifest.json"), MANIFEST),
                *((tarfile.TarInfo(f"onnx/{n}"), d) for n, d in GOOD.files.items()),
                (tarfile.TarInfo("onnx/extra.onnx"), b"x"),
            ),
            "not in its manifest: ['extra.onnx']",
        ),
    ],
)
def test_malformed_bundles_are_refused(raw: bytes, message: str) -> None:
    with pytest.raises(BundleError, match=message.replace("[", r"\[")):
        Bundle.parse(raw)


def test_a_thin_bundle_carries_the_banks_model_and_takes_the_rest_from_the_agent(
    tmp_path: Path,
) -> None:
    full = bank_bundle(BANK)
    thin = Bundle.parse(full.thin(SHIPPED).to_bytes())
    assert list(thin.files) == ["bank_probe.onnx"] and len(thin.to_bytes()) < 16_000
    assert [m.file for m in thin.missing] == sorted(GOOD.files)
    with pytest.raises(BundleError, match="complete it first"):
        thin.verify(trusting(BANK))
    assert thin.complete(SHIPPED) == full
    for name in GOOD.files:
        (tmp_path / name).write_bytes(b"an older agent's model")
    with pytest.raises(BundleError, match="neither in the bundle nor shipped with this agent"):
        thin.complete(tmp_path)


def test_signatures_and_digests_are_checked() -> None:
    assert len(bank_bundle(BANK).verify(trusting(BANK))) == 4
    with pytest.raises(ModelRefused, match="not in the trusted keys"):
        bank_bundle(BANK).verify(TrustedKeys.from_dir())  # the project key alone
    with pytest.raises(ModelRefused, match="unsigned"):
        bank_bundle(BANK, signed=False).verify(trusting(BANK))
    with pytest.raises(ModelRefused, match="file corrupted or replaced"):
        corrupted(bank_bundle(BANK)).verify(trusting(BANK))


def test_health_check_passes_the_bank_bundle_and_measures_it() -> None:
    models, report = health.check_bundle(bank_bundle(BANK), trusting(BANK))
    assert models.versions[PROBE] == "2026.1"
    assert set(report.passive) == {"cuntong-passive-baseline@0.1.0", f"{PROBE}@2026.1"}
    assert all(0 <= s <= 1 for s in report.passive.values())
    assert 0 < report.frame_ms < health.Budget().frame_ms


def test_health_check_refuses_scores_out_of_range_slow_sets_and_unloadable_models() -> None:
    trusted = trusting(BANK)
    with pytest.raises(Unhealthy, match=rf"{PROBE}@2026.1: bona fide score [0-9.]+ is not in 0-1"):
        health.check_bundle(bank_bundle(BANK, scale=1.0), trusted)
    with pytest.raises(Unhealthy, match=r"over the 0\.001 ms budget"):
        health.check_bundle(bank_bundle(BANK), trusted, health.Budget(frame_ms=0.001))
    ticks = iter([0.0, 30.0])
    with pytest.raises(Unhealthy, match=r"loading the models took 30\.0 s"):
        health.check_bundle(bank_bundle(BANK), trusted, clock=lambda: next(ticks))
    garbage = _signed_garbage()
    with pytest.raises(ModelRefused, match="does not load"):
        health.check_bundle(garbage, trusted)


def _signed_garbage() -> Bundle:
    """A correctly signed entry whose file onnxruntime cannot parse."""
    b = bank_bundle(BANK)
    entry = b.manifest.get(PROBE)
    junk = b"\x08\x07this is not an onnx model"
    bad = sign(replace(entry, sha256=hashlib.sha256(junk).hexdigest()), BANK)
    return Bundle(b.manifest.replace(bad), {**b.files, entry.file: junk})


def test_cli_builds_a_signed_bundle_and_refuses_an_untrusted_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "bank"
    unsigned = bank_bundle(BANK, signed=False)
    (folder / "onnx").mkdir(parents=True)
    (folder / "manifest.json").write_bytes(unsigned.manifest.to_bytes())
    for name, data in unsigned.files.items():
        (folder / "onnx" / name).write_bytes(data)
    pem = tmp_path / "bank.pem"
    pem.write_bytes(
        BANK.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    keys = tmp_path / "keys"
    keys.mkdir()
    argv = ["--manifest", str(folder / "manifest.json"), "--out", str(tmp_path / "b.tar")]
    with pytest.raises(SystemExit, match=r"refused, nothing written: .*unsigned"):
        bundle_cli.main(argv)
    with pytest.raises(SystemExit, match="not in the trusted keys"):
        bundle_cli.main([*argv, "--key", str(pem)])  # the default keys do not know the bank
    assert not (tmp_path / "b.tar").exists()

    for key in trusting(BANK).keys.values():
        (keys / f"{key_id(key)}.pub").write_text(public_key_text(key))
    bundle_cli.main([*argv, "--key", str(pem), "--keys", str(keys)])
    out = capsys.readouterr().out
    assert "health: load" in out and f"{PROBE}@2026.1" in out
    built = Bundle.parse((tmp_path / "b.tar").read_bytes())
    assert len(built.verify(trusting(BANK))) == 4
    assert (folder / "manifest.json").read_bytes() == unsigned.manifest.to_bytes()  # untouched


def test_cuntong_models_bundle_writes_the_same_bytes_every_time(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser(prog="cuntong")
    cli.add_parser(parser.add_subparsers(dest="command", required=True))
    for name in ("one.tar", "two.tar"):
        args = parser.parse_args(["models", "bundle", "--out", str(tmp_path / name)])
        assert args.func(args) == 0
    one, two = (tmp_path / "one.tar").read_bytes(), (tmp_path / "two.tar").read_bytes()
    assert one == two == Bundle.from_folder(DEFAULT_MANIFEST).to_bytes()
