"""Face match against the ID-card photo with the real dlib models, loaded through the manifest."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from skimage import data

from edge.vision.facematch import DEFAULT_THRESHOLD, FaceMatcher, NoFace, match
from edge.vision.runtime import ModelSet
from firmware_adapters.idcard.photo import SimulatorPhotoDecoder, decode_photo
from firmware_adapters.idcard.simulator import sample_card
from models.errors import ModelRefused
from models.signing import TrustedKeys
from tests.vision.face_match_models import signed_copy


@pytest.fixture(scope="module")
def matcher(models: ModelSet, tmp_path_factory: pytest.TempPathFactory) -> FaceMatcher:
    path, trusted = signed_copy(tmp_path_factory.mktemp("fm"), Ed25519PrivateKey.generate())
    return FaceMatcher.load(models.detector, path, trusted)


def id_photo() -> np.ndarray:
    """The photo the simulated reader hands over, through the adapter's decoder seam."""
    jpeg = decode_photo(SimulatorPhotoDecoder(), sample_card(0).photo_wlt)
    bgr = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def relit(rgb: np.ndarray, gain: float, gamma: float) -> np.ndarray:
    x = (rgb.astype(np.float32) / 255.0) ** gamma * gain
    return np.clip(x * 255.0, 0, 255).astype(np.uint8)


def test_the_same_face_in_other_crops_and_light_matches_the_id_photo(
    matcher: FaceMatcher, astronaut: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    photo = id_photo()
    lives = [
        np.ascontiguousarray(astronaut[20:320, 80:380]),  # head and shoulders
        relit(np.ascontiguousarray(astronaut[0:400, 60:460]), 0.6, 1.4),  # dim, wider
        relit(np.ascontiguousarray(astronaut[40:300, 120:360]), 1.2, 0.8),  # bright, tight
    ]
    for live in lives:
        report = matcher.compare(live, photo, DEFAULT_THRESHOLD)
        assert report.matched, report
        assert report.distance < DEFAULT_THRESHOLD
    assert set(report.to_dict()) == {"distance", "score", "threshold", "matched", "models"}
    assert set(report.models) == {
        "blazeface-short-range@0.10.21+onnx.1",
        "dlib-resnet-face-v1@1+frm.0.3.0",
        "dlib-shape-5@1+frm.0.3.0",
    }
    assert all(len(h) == 64 for h in report.models.values())
    assert "distance" in caplog.text and "[" not in caplog.text  # no vector in the log


def test_a_different_face_does_not_match(matcher: FaceMatcher) -> None:
    cameraman = cv2.cvtColor(data.camera(), cv2.COLOR_GRAY2RGB)
    report = matcher.compare(cameraman, id_photo(), DEFAULT_THRESHOLD)
    assert not report.matched
    assert report.distance > DEFAULT_THRESHOLD


def test_an_image_without_a_face_is_refused_by_name(matcher: FaceMatcher) -> None:
    with pytest.raises(NoFace, match="live frame: 0 faces"):
        matcher.compare(np.full((240, 320, 3), 128, np.uint8), id_photo(), DEFAULT_THRESHOLD)


def test_match_is_a_pure_distance_at_the_callers_threshold() -> None:
    a = np.zeros(128, np.float32)
    b = a.copy()
    b[0] = 0.5
    assert match(a, b, 0.6).matched and match(a, b, 0.6).distance == 0.5
    assert not match(a, b, 0.4).matched
    assert match(a, a, 0.6).score == 1.0
    with pytest.raises(ValueError, match="equal 1-D"):
        match(a, np.zeros(64), 0.6)


def test_a_model_file_that_does_not_match_its_signed_hash_is_refused(
    models: ModelSet, tmp_path: Path
) -> None:
    path, trusted = signed_copy(tmp_path, Ed25519PrivateKey.generate(), sha256="0" * 64)
    with pytest.raises(ModelRefused, match=r"dlib-resnet-face-v1.*SHA-256"):
        FaceMatcher.load(models.detector, path, trusted)


def test_an_untrusted_signature_is_refused(models: ModelSet, tmp_path: Path) -> None:
    path, _ = signed_copy(tmp_path, Ed25519PrivateKey.generate())
    other = TrustedKeys.of(Ed25519PrivateKey.generate().public_key())
    with pytest.raises(ModelRefused, match="not in the trusted keys"):
        FaceMatcher.load(models.detector, path, other)
