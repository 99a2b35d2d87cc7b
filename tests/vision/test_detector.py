"""The converted BlazeFace and face mesh models on a real photograph, and the pipeline gates."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.vision import blazeface, pipeline
from edge.vision.errors import BadFrame
from edge.vision.runtime import ModelSet
from modeltools.eval import correctness


def test_detector_finds_the_astronaut_face(models: ModelSet, astronaut: np.ndarray) -> None:
    faces = pipeline.detect(models, astronaut)
    assert len(faces) == 1
    x0, y0, x1, y1 = faces[0].box
    assert 160 < x0 < 200 and 260 < x1 < 290 and 60 < y0 < 100 and 160 < y1 < 190
    assert faces[0].score > 0.85
    right_eye, left_eye = faces[0].keypoints[:2]
    assert right_eye[0] < left_eye[0]  # the subject's right eye is on the image's left


def test_detector_follows_a_mirrored_and_resized_frame(
    models: ModelSet, astronaut: np.ndarray
) -> None:
    mirrored = np.ascontiguousarray(astronaut[:, ::-1])
    (face,) = pipeline.detect(models, mirrored)
    (orig,) = pipeline.detect(models, astronaut)
    assert abs((512 - face.box[2]) - orig.box[0]) < 8  # mirrored box lands where it should
    wide = cv2.resize(astronaut, (640, 480))
    (face,) = pipeline.detect(models, wide)
    assert abs((face.box[0] + face.box[2]) / 2 - 225 * 640 / 512) < 15


def test_landmarks_measure_open_eyes_and_a_frontal_face(
    models: ModelSet, astronaut: np.ndarray
) -> None:
    (face,) = pipeline.detect(models, astronaut)
    m, points = pipeline.landmarks(models, astronaut, face)
    assert points.shape == (468, 2)
    assert m.presence > 0.9
    assert 0.2 < m.ear < 0.4
    assert m.mar < 0.3
    assert abs(m.yaw) < 10


def test_tier_a_fixed_inputs_give_exactly_the_expected_reasons(models: ModelSet) -> None:
    rows = correctness.run(models)
    assert {name for name, _, _ in rows} >= {"no_face", "two_faces", "tiny_face", "dark_frame"}
    for name, want, got in rows:
        assert got == want, name


def test_usable_frame_has_measures(models: ModelSet, astronaut: np.ndarray) -> None:
    result = pipeline.analyze(models, astronaut)
    assert result.usable and result.measures is not None
    assert len(result.member_scores) == len(models.passive)


@pytest.mark.parametrize(
    "bad", [np.zeros((480, 640), np.uint8), np.zeros((48, 64, 3), np.float32), "frame"]
)
def test_bad_frames_raise(models: ModelSet, bad: object) -> None:
    with pytest.raises(BadFrame):
        pipeline.analyze(models, bad)  # type: ignore[arg-type]


def test_decode_maps_an_anchor_back_through_the_letterbox() -> None:
    # 896 anchors: 16×16 cells × 2, then 8×8 × 6; first centre (0.5/16, 0.5/16).
    assert blazeface.ANCHORS.shape == (896, 2)
    assert np.allclose(blazeface.ANCHORS[0], [1 / 32, 1 / 32])
    frame = np.zeros((480, 640, 3), np.uint8)  # letterboxed: 128 × 96, 16 rows of padding
    _, lb = blazeface.preprocess(frame)
    assert (lb.pad_x, lb.pad_y) == (0, 16) and lb.scale == pytest.approx(0.2)
    reg = np.zeros((1, 896, 16), np.float32)
    logits = np.full((1, 896, 1), -10, np.float32)
    i = 512 + (4 * 8 + 4) * 6  # stride-16 anchor at cell (4, 4): centre (0.5625, 0.5625)
    reg[0, i, 2:4] = 32  # a 32×32 box in the 128 input
    logits[0, i] = 5
    (face,) = blazeface.decode(reg, logits, lb)
    cx, cy = 0.5625 * 128 / 0.2, (0.5625 * 128 - 16) / 0.2
    assert face.box == pytest.approx((cx - 80, cy - 80, cx + 80, cy + 80))
    assert face.score == pytest.approx(1 / (1 + np.exp(-5)))


def test_weighted_nms_merges_overlapping_boxes() -> None:
    reg = np.zeros((1, 896, 16), np.float32)
    logits = np.full((1, 896, 1), -10, np.float32)
    reg[0, :2, 2:4] = 40
    logits[0, :2] = 3  # the two anchors of the first cell: the same face twice
    faces = blazeface.decode(reg, logits, blazeface.Letterbox(1.0, 0, 0))
    assert len(faces) == 1
