"""Planarity: does the face move like a head, or like a flat picture of one?

During the challenge's head turn, the landmarks of a print, a photo or a phone screen held up
to the camera all lie on one plane, so one homography maps their positions in the frontal
frame onto their positions in a turned frame (up to the face mesh's own jitter). A real head
is not flat: the nose tip, the cheeks and the jaw sit at different depths, so the turn moves
them by different amounts (parallax) and no homography explains them. The *parallax* of a
frame is the RMS error of the best homography from the frontal reference to that frame, over
landmarks that expressions do not move, in units of the eye-corner distance.

The tracker also checks that what it measures is one continuous, plausible head:

    TRACK_CUT          the face box jumped (centre moved over 0.6 face widths, or the width
                       changed by over 35%, between consecutive usable frames): a cut or a swap
    FACE_CHANGED       in frames seen from the reference's angle, the landmark geometry
                       differs from the reference (after the best affine map) by more than a
                       face's own jitter: a different face or picture. Geometry, not face
                       recognition.
    IMPLAUSIBLE_POSE   yaw beyond what a customer facing the terminal shows (> 75° as read)
    NO_HEAD_TURN       the turn did not reach PEAK_DEG from the reference each way, or fewer
                       than MIN_TURNED frames each way are turned TURN_DEG or more to measure

Two gates, because a cooperative shake is sampled by the camera: a head turned ±15° reads
12-30° at its peak frame as the nose-between-cheeks yaw, but that is one frame per side when
the turn is quick, and the frames either side of it (two thirds of the way) read 5-20°. Each
side must *reach* PEAK_DEG (the customer did turn), and parallax is taken over every frame
turned TURN_DEG or more, which includes those shoulder frames. With a single 12° gate for
both, a real ±15° turn whose second-largest frame read 11° scored 0 like a flat picture.

Pure: `Planarity.feed(points, box, yaw)` returns the next state; `bona_fide` maps the largest
parallax seen to 0-1. Landmarks live in this state only for the check's duration (see
`edge.vision.session`): nothing here is sent or stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import cv2
import numpy as np

# Mesh landmarks that blinking, talking and smiling leave in place: nose bridge and tip, nose
# wings, forehead, temples, eye corners, cheekbones, chin and jaw.
RIGID = (
    1, 4, 5, 6, 168, 197, 195, 48, 278, 98, 327, 129, 358,  # nose
    10, 151, 9, 8, 109, 338, 67, 297,  # forehead
    127, 356, 21, 251, 54, 284, 162, 389,  # temples
    33, 133, 362, 263,  # eye corners
    234, 454, 93, 323, 132, 361, 50, 280, 205, 425, 123, 352, 116, 345,  # cheeks
    152, 175, 199, 377, 148, 176, 400, 172, 397, 136, 365,  # chin and jaw
)  # fmt: skip
EYE_CORNERS = (33, 263)
REFERENCE_DEG = 20.0  # the reference is the first frame facing the camera within this
SAME_VIEW_DEG = 8.0  # frames this close to the reference's yaw are compared for identity
TURN_DEG = 8.0  # a frame counts for parallax only when turned this far from the reference
PEAK_DEG = 12.0  # ... and each side's largest turn must reach this
MAX_YAW_DEG = 75.0  # the nose-between-cheeks yaw reads ~2× a rendered head's true turn
MIN_TURNED = 2  # frames per side
CUT_SHIFT = 0.6  # face widths
CUT_SCALE = 0.35
FACE_CHANGE = 0.06  # affine-normalised RMS landmark difference, in eye-corner distances
# Parallax (RMS homography error / eye-corner distance) → bona fide probability: linear from
# FLAT to DEEP. Rendered heads turned 15-22° each way measure 0.033-0.068; rendered prints and
# screens never read as turned both ways (modeltools.eval.planarity, docs/benchmarks.md).
# Set on those renders, not on recorded customers. TURN_DEG and PEAK_DEG were set on the
# development faces (`python -m modeltools.eval.planarity --set dev`), never on the evaluation
# faces whose figures are reported.
FLAT, DEEP = 0.015, 0.030


@dataclass(frozen=True, eq=False)
class Planarity:
    """What the check has measured so far; start with `Planarity()`."""

    reference: np.ndarray | None = None  # rigid landmarks (frame px) of the first frontal frame
    reference_yaw: float = 0.0
    last_box: tuple[float, float, float, float] | None = None
    measured: tuple[tuple[int, float], ...] = ()  # (side ±1, parallax) of each turned frame
    peaks: tuple[float, float] = (0.0, 0.0)  # largest turn from the reference: right, left
    faults: frozenset[str] = field(default_factory=frozenset)

    def feed(
        self, points: np.ndarray, box: tuple[float, float, float, float], yaw: float
    ) -> Planarity:
        """One usable frame's 468 landmarks (frame pixels, x y), face box and yaw."""
        rigid = np.asarray(points, np.float64)[list(RIGID), :2]
        faults = set(self.faults)
        if self.last_box is not None and _jumped(self.last_box, box):
            faults.add("TRACK_CUT")
        if abs(yaw) > MAX_YAW_DEG:
            faults.add("IMPLAUSIBLE_POSE")
        state = replace(self, last_box=box, faults=frozenset(faults))
        if self.reference is None:
            if abs(yaw) <= REFERENCE_DEG:
                return replace(state, reference=rigid, reference_yaw=yaw)
            return state
        same_view = abs(yaw - self.reference_yaw) <= SAME_VIEW_DEG
        if same_view and shape_difference(self.reference, rigid) > FACE_CHANGE:
            faults.add("FACE_CHANGED")
            return replace(state, faults=frozenset(faults))
        turn = yaw - self.reference_yaw
        right, left = self.peaks
        state = replace(state, peaks=(max(right, turn), max(left, -turn)))
        if abs(turn) < TURN_DEG:
            return state
        side = 1 if turn > 0 else -1
        return replace(state, measured=(*self.measured, (side, parallax(self.reference, rigid))))

    def _side(self, side: int) -> list[float]:
        return [p for s, p in self.measured if s == side]

    @property
    def turned(self) -> bool:
        """Each side reached PEAK_DEG and has at least MIN_TURNED frames measured (turned
        TURN_DEG or more): the shake went both ways."""
        return min(self.peaks) >= PEAK_DEG and all(
            len(self._side(s)) >= MIN_TURNED for s in (1, -1)
        )

    @property
    def parallax(self) -> float:
        """The smaller of the two sides' median parallax (0 until `turned`): a head shows
        parallax in every turned frame, while the mesh's jitter on a flat picture spikes in a
        frame or two, and a picture rarely even reads as turned both ways."""
        if not self.turned:
            return 0.0
        return float(min(np.median(self._side(s)) for s in (1, -1)))

    @property
    def reasons(self) -> frozenset[str]:
        """Reason codes (edge.vision.verdict.REASONS) this track raises."""
        return self.faults | (frozenset() if self.turned else frozenset({"NO_HEAD_TURN"}))

    @property
    def bona_fide(self) -> float:
        """0-1: how far the median parallax is from a flat picture's; 0 without a turn."""
        if not self.turned:
            return 0.0
        return float(np.clip((self.parallax - FLAT) / (DEEP - FLAT), 0.0, 1.0))


def _scale(rigid: np.ndarray) -> float:
    a, b = (RIGID.index(i) for i in EYE_CORNERS)
    return float(np.linalg.norm(rigid[a] - rigid[b])) + 1e-6


def parallax(reference: np.ndarray, rigid: np.ndarray) -> float:
    """RMS error of the least-squares homography reference → rigid, in eye-corner distances."""
    h, _ = cv2.findHomography(reference, rigid, 0)
    if h is None:  # degenerate points: nothing planar about them either
        return float("inf")
    mapped = cv2.perspectiveTransform(reference[None], h)[0]
    return float(np.sqrt(((mapped - rigid) ** 2).sum(1).mean())) / _scale(rigid)


def shape_difference(reference: np.ndarray, rigid: np.ndarray) -> float:
    """RMS difference after the best affine map, in eye-corner distances. Affine, not
    similarity: a slight turn or tilt foreshortens a face, and must not read as a new face."""
    m, _ = cv2.estimateAffine2D(reference, rigid, method=cv2.LMEDS)
    if m is None:
        return float("inf")
    mapped = reference @ m[:, :2].T + m[:, 2]
    return float(np.sqrt(((mapped - rigid) ** 2).sum(1).mean())) / _scale(rigid)


def _jumped(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    wa, wb = a[2] - a[0], b[2] - b[0]
    shift = np.hypot((a[0] + a[2] - b[0] - b[2]) / 2, (a[1] + a[3] - b[1] - b[3]) / 2)
    return bool(shift > CUT_SHIFT * wa or abs(wb - wa) > CUT_SCALE * wa)
