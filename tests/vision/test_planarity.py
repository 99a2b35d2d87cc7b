"""Planarity on rendered presentations of faces other than the astronaut: a flat picture
turning (print, screen) is refused, a textured 3D head turning passes; and the consistency
checks fire on a cut, a swapped face and an impossible pose.

The presentations come from the producer's own code (`modeltools.eval.render` via
`modeltools.eval.planarity`) through the shipped detector and mesh. The 3D heads are the
mean face shape of the LFW fold the face is not in (`modeltools.eval.mean_shape`), so no
head is drawn on its own mesh's depth estimate.
"""

from __future__ import annotations

import numpy as np
import pytest

from edge.vision.planarity import EYE_CORNERS, PEAK_DEG, TURN_DEG, Planarity
from edge.vision.runtime import ModelSet
from modeltools.eval import mean_shape, render
from modeltools.eval import planarity as ev
from modeltools.train import attacks

AMPLITUDE = 22.0


@pytest.fixture(scope="module")
def faces(models: ModelSet) -> list[int]:
    return ev.frontal_faces(models, 3)


def _score(
    models: ModelSet, model: render.FaceModel, flat: bool, texture=None, amplitude=AMPLITUDE
) -> float:  # type: ignore[no-untyped-def]
    frames = [render.render(model, y, flat, texture) for y in ev.sequence(amplitude)]
    return ev.score(ev.track(models, frames))


@pytest.mark.parametrize("amplitude", [22.0, 15.0])
def test_rendered_head_passes_and_flat_pictures_fail(
    models: ModelSet, faces: list[int], amplitude: float
) -> None:
    """At ±22° and at a cooperative ±15° (where LFW 10's weaker side reads one frame past
    12°: before the two-gate turn it scored 0 like a print)."""
    assert len(faces) == 3
    for i in faces:
        photo = ev.lfw_frame(i)
        model = render.face_model(models, photo)
        bona = ev.bona_fide_head(models, i)
        assert i not in mean_shape.shape_for(i).faces  # never its own reading
        assert bona.points is not model.points and bona.uv is not None
        rng = np.random.default_rng(i)
        head = _score(models, bona, False, amplitude=amplitude)
        printed = _score(models, model, True, attacks.print_attack(photo, rng), amplitude)
        screen = _score(models, model, True, attacks.screen_attack(photo, rng), amplitude)
        assert head >= 70, f"LFW face {i}: rendered head scored {head}"
        assert printed < 70 and screen < 70, f"LFW face {i}: print {printed}, screen {screen}"


def test_parallax_alone_separates_even_when_a_picture_reads_as_turned(
    models: ModelSet, faces: list[int]
) -> None:
    """Flat pictures mostly fail because they never read as a head turn; here the yaw comes
    from the render instead, so only the homography residual can tell them apart."""
    yaws = ev.forced_yaws(AMPLITUDE)
    for i in faces:
        photo = ev.lfw_frame(i)
        model = render.face_model(models, photo)
        bona = ev.bona_fide_head(models, i)
        head = ev.track(
            models, [render.render(bona, y, False) for y in ev.sequence(AMPLITUDE)], yaws
        )
        printed = attacks.print_attack(photo, np.random.default_rng(i))
        flat = ev.track(
            models, [render.render(model, y, True, printed) for y in ev.sequence(AMPLITUDE)], yaws
        )
        assert flat.turned and head.turned
        assert flat.parallax < 0.015 < 0.030 < head.parallax, (i, flat.parallax, head.parallax)


def test_the_mean_shape_leaves_each_face_out_and_rebuilds_from_the_shipped_models(
    models: ModelSet,
) -> None:
    """The stored mean shape is what `python -m modeltools.eval.mean_shape` makes from the
    shipped mesh and the installed LFW subset; its two folds share no face, so every face
    has a shape that did not average it."""
    folds = mean_shape.load()
    assert len(folds) == 2 and not folds[0].faces & folds[1].faces
    assert all(len(f.faces) >= 20 for f in folds)
    for i in (*folds[0].faces, *folds[1].faces):
        assert i not in mean_shape.shape_for(i).faces
    assert mean_shape.check(models) <= mean_shape.TOLERANCE
    nose, cheek = mean_shape.shape_for(3).points[[1, 234]]
    assert nose[2] < 0 < cheek[2]  # the nose nearer the camera than the cheeks


def test_a_cut_to_a_different_face_is_caught(models: ModelSet) -> None:
    """LFW 3 and 39 differ by 0.10 eye-corner distances after the best affine map (about
    half the 66 pairs of 12 LFW faces differ by more than the 0.06 limit: geometry, not face
    recognition)."""
    a, b = (render.face_model(models, ev.lfw_frame(i)) for i in (3, 39))
    same = ev.track(models, [render.render(a, 0.0, False)] * 2)
    assert not same.faults
    swapped = ev.track(models, [render.render(a, 0.0, False), render.render(b, 0.0, False)])
    assert "FACE_CHANGED" in swapped.reasons


def test_box_jump_and_impossible_pose_are_faults() -> None:
    points = np.zeros((468, 2))
    points[:, 0] = np.arange(468) % 20
    points[:, 1] = np.arange(468) // 20
    s = Planarity().feed(points, (0, 0, 100, 100), 0.0)
    assert s.reasons == {"NO_HEAD_TURN"}
    assert "TRACK_CUT" in s.feed(points + 200, (200, 200, 300, 300), 0.0).reasons
    assert "IMPLAUSIBLE_POSE" in s.feed(points, (0, 0, 100, 100), 85.0).reasons


def test_no_turn_scores_zero_and_parallax_maps_to_the_score() -> None:
    assert Planarity().bona_fide == 0.0
    one_side = Planarity(measured=((1, 0.05), (1, 0.05)))
    assert one_side.bona_fide == 0.0 and "NO_HEAD_TURN" in one_side.reasons
    both = {"peaks": (20.0, 20.0)}
    flat = Planarity(measured=((1, 0.01), (1, 0.01), (-1, 0.01), (-1, 0.01)), **both)
    deep = Planarity(measured=((1, 0.05), (1, 0.06), (-1, 0.04), (-1, 0.05)), **both)
    assert flat.bona_fide == 0.0 and deep.bona_fide == 1.0 and not deep.reasons


def _turning(yaws: list[float], depth: float) -> Planarity:
    """A synthetic rigid point cloud turned about a vertical axis (orthographic), its yaw
    reading given: `depth` 0 is a flat picture, > 0 a face with relief."""
    rng = np.random.default_rng(0)
    cloud = np.column_stack([rng.uniform(-50, 50, 468), rng.uniform(-60, 60, 468)])
    z = depth * rng.uniform(0, 1, 468)  # relief no plane explains
    cloud[list(EYE_CORNERS), :] = [[-30, -20], [30, -20]]
    state = Planarity()
    for yaw in yaws:
        a = np.radians(yaw)
        pts = np.column_stack([200 + cloud[:, 0] * np.cos(a) + z * np.sin(a), 200 + cloud[:, 1]])
        state = state.feed(pts, (140, 130, 260, 270), yaw)
    return state


def test_each_side_must_reach_the_peak_and_shoulder_frames_count() -> None:
    """A side whose largest turn reads under PEAK_DEG is no turn, however many frames pass
    TURN_DEG; frames between TURN_DEG and PEAK_DEG count toward the parallax once the peak
    was reached; a flat cloud turned the same way measures no parallax."""
    shy = _turning([0, 9, 11, 9, 0, -9, -20, -9, 0], depth=60)
    assert shy.peaks[0] < PEAK_DEG and not shy.turned and "NO_HEAD_TURN" in shy.reasons
    quick = _turning([0, 5, 10, 16, 10, 5, 0, -5, -10, -16, -10, -5, 0], depth=60)
    assert quick.turned and len(quick.measured) == 6 and quick.bona_fide == 1.0
    flat = _turning([0, 5, 10, 16, 10, 5, 0, -5, -10, -16, -10, -5, 0], depth=0)
    assert flat.turned and flat.bona_fide == 0.0
    assert TURN_DEG < PEAK_DEG


def test_the_development_faces_the_gates_were_chosen_on_are_not_the_reported_ones(
    models: ModelSet,
) -> None:
    dev, reported = (ev.face_set(models, 4, s) for s in ("dev", "eval"))
    assert len(dev) == len(reported) == 4 and not set(dev) & set(reported)
    assert reported == ev.frontal_faces(models, 4)
    with pytest.raises(ValueError, match="unknown face set 'test'"):
        ev.face_set(models, 4, "test")
