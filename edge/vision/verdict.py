"""The liveness result that leaves the terminal, and the policy that routes it.

Only this message leaves the terminal: a 0-100 score, the decision, the threshold applied, the
model versions, reason codes, the challenge order, and a SHA-256 chained over the raw frames
the check analysed. The digest fingerprints the check's exact input: the same digest in two
sessions means byte-identical frames were fed twice (an injected replay). It can NOT be
matched to the call recording (frames are dropped, the recording is lossy VP8).
`VisionResult.parse` accepts exactly these fields and nothing else.

Score, when the active challenge passed (else 0: a failed challenge is no evidence of
liveness): 100 × the planarity check's bona fide value (`edge.vision.planarity`: did the face
move like a head during the shake), or, when the manifest's passive ensemble has members, the
lower of that and the median ensemble probability over usable frames: a bank's certified
model can only add refusals to the geometry, never overrule it. The session passes when the
score reaches the business type's threshold and no blocking reason was raised; otherwise it
goes to manual review by a remote teller.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from edge.vision.challenge import Challenge
from edge.vision.pipeline import FrameAnalysis
from edge.vision.planarity import Planarity

DEFAULT_THRESHOLD = 70
REASONS = {
    "TOO_DARK": "frame too dark to judge",
    "NO_FACE": "no face in frame",
    "FACE_TOO_SMALL": "face too small (customer too far from the camera)",
    "MULTIPLE_FACES": "more than one face in frame",
    "NO_USABLE_FRAME": "no frame passed the quality gates",
    "PASSIVE_BELOW_THRESHOLD": "passive anti-spoofing score below the policy threshold",
    "CHALLENGE_TIMEOUT": "an active challenge step was not completed in time",
    "CHALLENGE_ABORTED": "the video ended before the active challenge finished",
    "FLAT_FACE": "the face moved like a flat picture (print, photo, screen) during the turn",
    "NO_HEAD_TURN": "the head did not turn far enough both ways to measure its depth",
    "TRACK_CUT": "the face jumped between frames (a cut or a swap)",
    "FACE_CHANGED": "the face's landmark geometry changed during the check",
    "IMPLAUSIBLE_POSE": "a head pose a customer facing the terminal cannot take",
}
BLOCKING = frozenset(
    {
        "MULTIPLE_FACES",
        "NO_USABLE_FRAME",
        "CHALLENGE_TIMEOUT",
        "CHALLENGE_ABORTED",
        "TRACK_CUT",
        "FACE_CHANGED",
        "IMPLAUSIBLE_POSE",
    }
)


@dataclass(frozen=True)
class Policy:
    """Threshold per business type; the bank sets these, the default is 70."""

    default: int = DEFAULT_THRESHOLD
    by_business: dict[str, int] = field(default_factory=dict)

    def threshold(self, business_type: str) -> int:
        return self.by_business.get(business_type, self.default)


class FrameDigest:
    """SHA-256 chained over every frame's shape and bytes, in order."""

    def __init__(self) -> None:
        self._h = hashlib.sha256(b"cuntong-vision-frames-v1")
        self.count = 0

    def update(self, frame: np.ndarray) -> None:
        self._h.update(json.dumps(frame.shape).encode())
        self._h.update(np.ascontiguousarray(frame).data)
        self.count += 1

    def hexdigest(self) -> str:
        return self._h.hexdigest()


@dataclass(frozen=True)
class VisionResult:
    """The whole message a liveness check sends upstream."""

    score: int
    decision: str  # "pass" or "manual_review"
    threshold: int
    business_type: str
    reasons: tuple[str, ...]
    models: dict[str, str]
    challenge: tuple[str, ...]
    frames: int
    frames_sha256: str

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["reasons"], d["challenge"] = list(self.reasons), list(self.challenge)
        return d

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False).encode()

    @classmethod
    def parse(cls, data: bytes) -> VisionResult:
        try:
            d = json.loads(data)
            if set(d) != {f for f in cls.__dataclass_fields__}:
                raise ValueError(f"fields {sorted(d)} are not the result's fields")
            result = cls(
                score=int(d["score"]),
                decision=str(d["decision"]),
                threshold=int(d["threshold"]),
                business_type=str(d["business_type"]),
                reasons=tuple(str(r) for r in d["reasons"]),
                models={str(k): str(v) for k, v in d["models"].items()},
                challenge=tuple(str(c) for c in d["challenge"]),
                frames=int(d["frames"]),
                frames_sha256=str(d["frames_sha256"]),
            )
        except (TypeError, KeyError, AttributeError) as err:
            raise ValueError(f"not a vision result: {err!r}") from err
        if not 0 <= result.score <= 100 or result.decision not in ("pass", "manual_review"):
            raise ValueError("score or decision out of range")
        if len(result.frames_sha256) != 64 or not set(result.reasons) <= set(REASONS):
            raise ValueError("bad frame digest or unknown reason code")
        return result


def decide(
    analyses: list[FrameAnalysis],
    challenge: Challenge,
    policy: Policy,
    business_type: str,
    models: dict[str, str],
    digest: FrameDigest,
    planarity: Planarity,
) -> VisionResult:
    """Combine per-frame analyses, the challenge outcome and the planarity track into the
    routed result."""
    threshold = policy.threshold(business_type)
    reasons = {r for a in analyses for r in a.reasons}
    usable = [a for a in analyses if a.usable]
    passive = [a.passive for a in usable if a.passive is not None]
    if not usable:
        reasons.add("NO_USABLE_FRAME")
    if challenge.outcome not in (None, "passed"):
        reasons.add(challenge.outcome)
    elif challenge.outcome is None:
        reasons.add("CHALLENGE_ABORTED")
    live = challenge.outcome == "passed" and bool(usable)
    if live:
        reasons |= planarity.reasons
    geometry = planarity.bona_fide
    bona_fide = min(geometry, float(np.median(passive))) if passive else geometry
    score = round(100 * bona_fide) if live else 0
    if live and planarity.turned and 100 * geometry < threshold:
        reasons.add("FLAT_FACE")
    if live and passive and 100 * float(np.median(passive)) < threshold:
        reasons.add("PASSIVE_BELOW_THRESHOLD")
    decision = "pass" if score >= threshold and not reasons & BLOCKING else "manual_review"
    return VisionResult(
        score=score,
        decision=decision,
        threshold=threshold,
        business_type=business_type,
        reasons=tuple(sorted(reasons)),
        models=dict(models),
        challenge=challenge.order,
        frames=digest.count,
        frames_sha256=digest.hexdigest(),
    )
