"""A bank's own ONNX classifier runs from its manifest entry alone, in an averaged ensemble."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from onnx import TensorProto, helper

from edge.vision import classifier, pipeline
from edge.vision.runtime import ModelSet
from models.errors import ModelRefused
from models.manifest import ClassifierSpec, ModelEntry
from models.registry import DEFAULT_MANIFEST
from models.signing import TrustedKeys
from modeltools.build.common import publish


def probe_model(layout: str, size: int = 32) -> bytes:
    """An ONNX 'classifier' whose outputs are the mean of each input channel (N×3)."""
    shape = [1, 3, size, size] if layout == "NCHW" else [1, size, size, 3]
    axes = [2, 3] if layout == "NCHW" else [1, 2]
    node = helper.make_node("ReduceMean", ["input"], ["out"], axes=axes, keepdims=0)
    graph = helper.make_graph(
        [node],
        "probe",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


def run_probe(frame: np.ndarray, box, spec: ClassifierSpec, layout: str) -> float:
    import onnxruntime as ort

    sess = ort.InferenceSession(probe_model(layout, spec.input_size[0]))
    x = classifier.to_input(classifier.crop(frame, box, spec), spec)
    return classifier.bona_fide(sess.run(None, {"input": x})[0], spec)


SOLID = np.zeros((120, 160, 3), np.uint8) + np.uint8([200, 100, 50])
BOX = (40.0, 30.0, 100.0, 90.0)


@pytest.mark.parametrize(
    ("order", "layout", "index", "mean", "std", "expected"),
    [
        ("RGB", "NCHW", 0, 0.0, 1.0, 200 / 255),
        ("BGR", "NCHW", 0, 0.0, 1.0, 50 / 255),
        ("BGR", "NHWC", 2, 0.0, 1.0, 200 / 255),
        ("RGB", "NHWC", 1, 0.2, 0.5, (100 / 255 - 0.2) / 0.5),
    ],
)
def test_spec_fields_drive_preprocessing(order, layout, index, mean, std, expected) -> None:
    spec = ClassifierSpec(
        input_size=(32, 32),
        channel_order=order,
        layout=layout,
        mean=(mean,) * 3,
        std=(std,) * 3,
        activation="none",
        bona_fide_index=index,
    )
    assert run_probe(SOLID, BOX, spec, layout) == pytest.approx(expected, abs=1e-5)


def test_box_expand_widens_the_crop() -> None:
    frame = np.zeros((200, 200, 3), np.uint8)
    frame[75:125, 75:125] = 255  # a white 50-pixel "face" on black
    box = (75.0, 75.0, 125.0, 125.0)
    tight = classifier.crop(frame, box, ClassifierSpec(input_size=(50, 50), box_expand=1.0))
    wide = classifier.crop(frame, box, ClassifierSpec(input_size=(50, 50), box_expand=2.0))
    assert tight.mean() == pytest.approx(255, abs=3)
    assert wide.mean() == pytest.approx(255 / 4, abs=6)
    # Near the frame edge the missing part is filled by replicating the border.
    edge = classifier.crop(frame, (0.0, 0.0, 20.0, 20.0), ClassifierSpec((50, 50), box_expand=3))
    assert edge.shape == (50, 50, 3) and edge.max() == 0


def test_activations() -> None:
    logits = np.array([[0.0, 2.0]])
    soft = ClassifierSpec((8, 8), activation="softmax", bona_fide_index=1)
    assert classifier.bona_fide(logits, soft) == pytest.approx(np.exp(2) / (1 + np.exp(2)))
    sig = ClassifierSpec((8, 8), activation="sigmoid", bona_fide_index=0)
    assert classifier.bona_fide(np.array([[0.0]]), sig) == 0.5


def test_bank_model_joins_the_ensemble_signed_by_the_bank(
    tmp_path: Path, astronaut: np.ndarray
) -> None:
    shutil.copytree(DEFAULT_MANIFEST.parent / "onnx", tmp_path / "onnx")
    manifest = tmp_path / "manifest.json"
    shutil.copy(DEFAULT_MANIFEST, manifest)
    bank = Ed25519PrivateKey.generate()
    key_file = tmp_path / "bank.pem"
    key_file.write_bytes(
        bank.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    spec = ClassifierSpec(
        input_size=(48, 48),
        channel_order="BGR",
        layout="NHWC",
        box_expand=1.2,
        activation="none",
        bona_fide_index=2,
    )
    entry = ModelEntry(
        name="bank-probe",
        version="2026.1",
        role="passive_classifier",
        file="bank_probe.onnx",
        sha256="0" * 64,
        licence="proprietary (bank)",
        provenance={"source": "the bank"},
        classifier=spec,
    )
    publish(entry, probe_model("NHWC", 48), key_file, manifest, join_ensemble=True)

    with pytest.raises(ModelRefused, match="not in the trusted keys"):
        ModelSet.load(manifest)  # the repo key alone does not vouch for the bank's model
    trusted = TrustedKeys({**TrustedKeys.from_dir().keys, **TrustedKeys.of(bank.public_key()).keys})
    models = ModelSet.load(manifest, trusted)
    assert models.versions["bank-probe"] == "2026.1" and len(models.passive) == 2

    result = pipeline.analyze(models, astronaut)
    baseline, probe = result.member_scores
    expected = run_probe(astronaut, result.face.box, spec, "NHWC")
    assert probe == pytest.approx(expected, abs=1e-5)
    assert result.passive == pytest.approx((baseline + probe) / 2)
