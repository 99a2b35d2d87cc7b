"""Which sessions go to quality review, and how a review is scored (pure).

Selection, first rule that applies:
1. ``low_liveness`` — passive-liveness score below the catalogue's ``manual_review_below``
   (70): full manual review of the whole session;
2. ``new_business`` — the business launched fewer than ``new_business_days`` ago: 100%;
3. ``sampled`` — otherwise at the business's ``qa_sample_rate``. The draw is a hash of the
   session id and a secret salt, so it is reproducible for auditors yet not predictable by a
   teller who does not know the salt.

Scoring: the reviewer awards 0..max points per checklist item; the score is the percentage of
the maximum. A review passes with a score ≥ ``PASS_SCORE`` and full marks on every critical
item (an unverified identity or a missing risk statement fails the session whatever else).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from cloud.catalogue import Catalogue


@dataclass(frozen=True, slots=True)
class Item:
    label: str
    points: int
    critical: bool = False


CHECKLIST: Mapping[str, Item] = {
    "greeting": Item("规范问候、表明身份 / greeted, introduced self", 5),
    "identity_verified": Item("核实客户身份（证件、人像）/ verified identity", 20, critical=True),
    "intent_confirmed": Item(
        "确认客户真实意愿 / confirmed the customer's own intent", 20, critical=True
    ),
    "risk_disclosed": Item("风险提示完整 / risk statement complete", 15, critical=True),
    "steps_followed": Item("按流程办理、无代操作 / followed steps, no operating for customer", 15),
    "elderly_care": Item("适老化服务（语速、确认理解）/ pace and checks for elderly", 10),
    "recording_quality": Item("双录画面声音清晰完整 / recording clear and complete", 10),
    "conduct": Item("服务用语文明规范 / courteous language", 5),
}
PASS_SCORE = 80.0


def review_reason(
    catalogue: Catalogue,
    business: str,
    session_id: str,
    liveness_score: float | None,
    closed_at: dt.datetime,
    salt: bytes,
    overridden: bool = False,
) -> str | None:
    """Why this session goes to review, or None if it does not.

    ``liveness_score`` is the terminal's signed verdict's score (never a typed one);
    ``overridden``: a supervisor passed a device step by override (always full review)."""
    spec = catalogue.get(business)
    if overridden:
        return "supervisor_override"
    if liveness_score is not None and liveness_score < catalogue.manual_review_below:
        return "low_liveness"
    if (closed_at.date() - spec.launched_on).days < catalogue.new_business_days:
        return "new_business"
    draw = hmac.new(salt, session_id.encode(), hashlib.sha256).digest()
    if int.from_bytes(draw[:8], "big") / 2**64 < spec.qa_sample_rate:
        return "sampled"
    return None


@dataclass(frozen=True, slots=True)
class Score:
    total: float
    passed: bool
    failed_critical: tuple[str, ...]


def score(points: Mapping[str, int]) -> Score:
    """Percentage score of a completed checklist (ValueError if incomplete or out of range)."""
    missing = sorted(set(CHECKLIST) - set(points))
    unknown = sorted(set(points) - set(CHECKLIST))
    if missing or unknown:
        raise ValueError(f"checklist mismatch: missing {missing}, unknown {unknown}")
    for key, value in points.items():
        if not 0 <= value <= CHECKLIST[key].points:
            raise ValueError(f"{key}: {value} points, allowed 0..{CHECKLIST[key].points}")
    total = 100 * sum(points.values()) / sum(item.points for item in CHECKLIST.values())
    failed = tuple(k for k, item in CHECKLIST.items() if item.critical and points[k] < item.points)
    return Score(round(total, 2), total >= PASS_SCORE and not failed, failed)
