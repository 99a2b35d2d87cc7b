"""The model slot describes how real anti-spoofing models were trained, exactly: the
capped-and-shifted crop with bilinear resizing matches a straight onnxruntime reference, the
ONNX input shape is checked against the manifest, and every refusal names its model."""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil

import cv2
import numpy as np
import onnxruntime as ort
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from onnx import TensorProto, helper, numpy_helper

from edge.vision import pipeline
from edge.vision.runtime import ModelSet
from models.bundle import Bundle
from models.errors import ManifestError, ModelRefused
from models.manifest import ClassifierSpec, Manifest, ModelEntry
from models.registry import DEFAULT_MANIFEST
from models.signing import DEFAULT_KEY_DIR, public_key_text, sign
from modeltools import cli
from modeltools.eval import iso30107
from tests.vision.bundles import trusting

SIZE = 80
MEAN, STD = (0.5, 0.4, 0.3), (0.25, 0.2, 0.3)


def projection_model(size: int = SIZE) -> bytes:
    """A 2-logit 'classifier': a fixed random projection of every input value, so any
    difference in crop, resize or normalisation moves its output."""
    w = np.random.default_rng(7).normal(0, 1 / size, (3 * size * size, 2)).astype(np.float32)
    nodes = [
        helper.make_node("Flatten", ["input"], ["flat"]),
        helper.make_node("MatMul", ["flat", "w"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "projection",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 2])],
        [numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


def bank_set(key: Ed25519PrivateKey, specs: dict[str, ClassifierSpec], size: int = SIZE) -> Bundle:
    """The factory detector and mesh plus one bank classifier per spec, bank-signed."""
    data = projection_model(size)
    entries = [
        sign(
            ModelEntry(
                name=name,
                version="1",
                role="passive_classifier",
                file=f"{name}.onnx",
                sha256=hashlib.sha256(data).hexdigest(),
                licence="proprietary (bank)",
                provenance={"source": "tests/vision/test_slot_fidelity.py"},
                classifier=spec,
            ),
            key,
        )
        for name, spec in specs.items()
    ]
    factory = Bundle.from_folder(DEFAULT_MANIFEST)
    shipped = [m for m in factory.manifest.models if m.role != "passive_classifier"]
    files = {m.file: factory.files[m.file] for m in shipped}
    return Bundle(
        Manifest((*shipped, *entries), tuple(specs)), {**files, **{e.file: data for e in entries}}
    )


def reference(
    frame: np.ndarray, box: tuple[float, float, float, float], scale: float
) -> np.ndarray:
    """Written from the description, not from edge.vision.classifier: the box × scale
    (capped to the frame), shifted inside it, sliced, bilinear-resized, BGR, normalised."""
    src_h, src_w = frame.shape[:2]
    x, y, box_w, box_h = box[0], box[1], box[2] - box[0], box[3] - box[1]
    scale = min((src_h - 1) / box_h, min((src_w - 1) / box_w, scale))
    new_w, new_h = box_w * scale, box_h * scale
    cx, cy = box_w / 2 + x, box_h / 2 + y
    lx, ly, rx, ry = cx - new_w / 2, cy - new_h / 2, cx + new_w / 2, cy + new_h / 2
    if lx < 0:
        rx -= lx
        lx = 0
    if ly < 0:
        ry -= ly
        ly = 0
    if rx > src_w - 1:
        lx -= rx - src_w + 1
        rx = src_w - 1
    if ry > src_h - 1:
        ly -= ry - src_h + 1
        ry = src_h - 1
    bgr = frame[..., ::-1]
    patch = cv2.resize(bgr[int(ly) : int(ry) + 1, int(lx) : int(rx) + 1], (SIZE, SIZE))
    x_in = (patch.astype(np.float32) / 255 - np.float32(MEAN)) / np.float32(STD)
    sess = ort.InferenceSession(projection_model(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x_in.transpose(2, 0, 1)[None]})[0].reshape(-1)


def spec(**kw: object) -> ClassifierSpec:
    base: dict[str, object] = {
        "input_size": (SIZE, SIZE),
        "channel_order": "BGR",
        "mean": MEAN,
        "std": STD,
        "box_expand": 2.7,
        "crop": "scaled_shifted",
        "interpolation": "bilinear",
    }
    return ClassifierSpec(**{**base, **kw})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def edge_frame(astronaut: np.ndarray) -> np.ndarray:
    """The astronaut with her face near the frame's left edge, where padding would dominate."""
    return np.ascontiguousarray(astronaut[:400, 150:])


def test_capped_shifted_bilinear_crop_matches_a_straight_reference(
    models: ModelSet, key: Ed25519PrivateKey, edge_frame: np.ndarray
) -> None:
    bundle = bank_set(key, {"bank-shifted": spec(), "bank-square": spec(crop="square_replicate")})
    loaded = ModelSet.from_bundle(bundle, trusting(key))
    (face,) = pipeline.detect(models, edge_frame)
    assert face.box[0] < face.width * 0.9  # near the edge: the 2.7× crop cannot be centred
    shifted, square = (pipeline.passive_output(m, edge_frame, face)[0] for m in loaded.passive)
    expected = reference(edge_frame, face.box, 2.7)
    assert np.abs(shifted.reshape(-1) - expected).max() < 0.01
    # The old square crop with a replicated border is a different input near the edge.
    assert np.abs(square.reshape(-1) - expected).max() > 0.05


def test_interpolation_is_the_one_the_manifest_names(
    models: ModelSet, key: Ed25519PrivateKey, edge_frame: np.ndarray
) -> None:
    bundle = bank_set(key, {m: spec(interpolation=m) for m in ("bilinear", "nearest", "area")})
    (face,) = pipeline.detect(models, edge_frame)
    out = [
        pipeline.passive_output(m, edge_frame, face)[0].reshape(-1)
        for m in ModelSet.from_bundle(bundle, trusting(key)).passive
    ]
    assert np.abs(out[0] - reference(edge_frame, face.box, 2.7)).max() < 0.01
    assert np.abs(out[0] - out[1]).max() > 0.01 and np.abs(out[0] - out[2]).max() > 0.01


def test_wrong_input_size_is_refused_naming_the_model(key: Ed25519PrivateKey) -> None:
    bundle = bank_set(key, {"bank-good": spec(), "bank-wrong": spec(input_size=(112, 112))})
    with pytest.raises(ModelRefused, match=r"bank-wrong@1: the ONNX input .* height 80 ≠ 112"):
        ModelSet.from_bundle(bundle, trusting(key))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("crop", "centre", "crop must be one of"),
        ("interpolation", "cubic", "interpolation"),
        ("box_expand", 0.5, "box_expand"),
        ("input_size", [0, 80], "input_size"),
        ("layout", "CHW", "layout"),
    ],
)
def test_every_classifier_block_refusal_names_its_model(
    field: str, value: object, message: str
) -> None:
    good = spec().to_dict()
    entry = {
        "name": "bank-second",
        "version": "1",
        "role": "passive_classifier",
        "file": "x.onnx",
        "sha256": "0" * 64,
        "licence": "x",
        "provenance": {},
        "classifier": {**good, field: value},
    }
    with pytest.raises(ManifestError, match=rf"'bank-second'.*{message}"):
        ModelEntry.from_dict(entry)


def test_new_fields_stay_out_of_entries_signed_before_them() -> None:
    d = ClassifierSpec(input_size=(32, 32)).to_dict()
    assert "crop" not in d and "interpolation" not in d
    assert spec().to_dict()["crop"] == "scaled_shifted"
    assert ClassifierSpec.from_dict(spec().to_dict()) == spec()


@pytest.fixture()
def bank_files(tmp_path, key: Ed25519PrivateKey, astronaut: np.ndarray):  # type: ignore[no-untyped-def]
    """A bank's bundle file, the keys its terminals trust, and a labelled image folder."""
    bundle = bank_set(key, {"bank-shifted": spec()}).thin(DEFAULT_MANIFEST.parent / "onnx")
    (tmp_path / "bank.tar").write_bytes(bundle.to_bytes())
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "bank.pub").write_text(public_key_text(key.public_key()))
    shutil.copy(DEFAULT_KEY_DIR / "cuntong-models.pub", keys)  # the shipped detector and mesh
    for label in ("bona_fide", "attack/print"):
        (tmp_path / "data" / label).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "data" / label / "a.png"), astronaut[..., ::-1])
    return tmp_path


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="cuntong")
    cli.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_models_score_prints_each_models_raw_output_and_crop(
    bank_files, key: Ed25519PrivateKey, astronaut: np.ndarray, capsys
) -> None:  # type: ignore[no-untyped-def]
    image = str(bank_files / "data/bona_fide/a.png")
    argv = ["models", "score", image, "--bundle", str(bank_files / "bank.tar")]
    assert _cli([*argv, "--keys", str(bank_files / "keys"), "--json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    (member,) = result["members"]
    assert member["model"] == "bank-shifted@1" and member["crop"] == "scaled_shifted"
    expected = reference(astronaut, tuple(result["face_box"]), 2.7)
    assert np.abs(np.array(member["raw"]["logits"]) - expected).max() < 0.05  # box rounded
    probs = np.exp(expected) / np.exp(expected).sum()
    assert result["ensemble_score"] == round(100 * member["bona_fide"])
    assert abs(member["bona_fide"] - probs[1]) < 0.02
    # The terminal's keys only (no bank key): refused, naming the model.
    with pytest.raises(SystemExit, match="bank-shifted@1"):
        _cli(argv)


def test_pad_report_evaluates_a_banks_bundle(bank_files) -> None:  # type: ignore[no-untyped-def]
    report = iso30107.main(
        [
            str(bank_files / "data"),
            "--out",
            str(bank_files / "report"),
            "--bundle",
            str(bank_files / "bank.tar"),
            "--keys",
            str(bank_files / "keys"),
        ]
    )
    assert report.models["bank-shifted"] == "1" and "cuntong-passive-baseline" not in report.models
