"""Quality inspection: selection rules, checklist scoring, the queue API feeding KPIs."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from cloud.catalogue import load_catalogue
from cloud.quality import rules, service
from cloud.quality.models import ReviewItem
from tests.oversight.conftest import Cloud

CAT = load_catalogue()
NOW = dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.UTC)
FULL = {k: item.points for k, item in rules.CHECKLIST.items()}


def test_low_liveness_always_reviewed_new_business_always_others_sampled() -> None:
    salt = b"s" * 32
    assert rules.review_reason(CAT, "cash_deposit", "x", 69.9, NOW, salt) == "low_liveness"
    # pension_account_opening launched 2026-10-01, within 90 days of NOW: 100%.
    picks = [
        rules.review_reason(CAT, "pension_account_opening", f"s{i}", 95, NOW, salt)
        for i in range(200)
    ]
    assert set(picks) == {"new_business"}
    later = NOW + dt.timedelta(days=90)
    picks = [
        rules.review_reason(CAT, "pension_account_opening", f"s{i}", 95, later, salt)
        for i in range(4000)
    ]
    assert picks.count("sampled") / 4000 == pytest.approx(0.05, abs=0.015)
    picks = [
        rules.review_reason(CAT, "large_transfer", f"s{i}", 70, NOW, salt) for i in range(4000)
    ]
    assert picks.count("sampled") / 4000 == pytest.approx(0.3, abs=0.03)
    # Reproducible with the salt, different without it.
    again = [
        rules.review_reason(CAT, "large_transfer", f"s{i}", 70, NOW, salt) for i in range(4000)
    ]
    assert again == picks
    other = [
        rules.review_reason(CAT, "large_transfer", f"s{i}", 70, NOW, b"t" * 32) for i in range(4000)
    ]
    assert other != picks
    none = dataclasses.replace(CAT.get("cash_deposit"), qa_sample_rate=0.0)
    cat = dataclasses.replace(CAT, businesses={"cash_deposit": none})
    assert rules.review_reason(cat, "cash_deposit", "x", 90, NOW, salt) is None


def test_checklist_scoring() -> None:
    assert rules.score(FULL) == rules.Score(100.0, True, ())
    missed_risk = {**FULL, "risk_disclosed": 10}
    result = rules.score(missed_risk)
    assert (
        result.total == 95.0 and not result.passed and result.failed_critical == ("risk_disclosed",)
    )
    low = {**FULL, "greeting": 0, "elderly_care": 0, "recording_quality": 0, "conduct": 0}
    assert rules.score(low) == rules.Score(70.0, False, ())
    with pytest.raises(ValueError, match="missing"):
        rules.score({"greeting": 5})
    with pytest.raises(ValueError, match=r"allowed 0\.\.5"):
        rules.score({**FULL, "greeting": 6})


async def test_review_queue_and_kpis(cloud: Cloud) -> None:
    salt = cloud.ov.qa_salt
    low = await service.consider(CAT, session_id="S-low", business="cash_deposit", teller_id="t1",
                                 liveness_score=50, closed_at=NOW, salt=salt)  # fmt: skip
    new = await service.consider(CAT, session_id="S-new", business="pension_account_opening",
                                 teller_id="t1", liveness_score=99,
                                 closed_at=NOW - dt.timedelta(minutes=5), salt=salt)  # fmt: skip
    assert low is not None and new is not None
    teller = await cloud.client("t1", "teller")
    assert (await teller.get("/api/v1/quality/queue")).status_code == 403
    reviewer = await cloud.client("r1", "reviewer")
    queue = (await reviewer.get("/api/v1/quality/queue")).json()
    assert [(i["session_id"], i["reason"]) for i in queue] == [
        ("S-low", "low_liveness"),
        ("S-new", "new_business"),
    ]
    checklist = (await reviewer.get("/api/v1/quality/checklist")).json()
    assert checklist["identity_verified"]["critical"] is True
    scored = await reviewer.post(
        "/api/v1/quality/S-low/score", json={"points": FULL, "comment": "ok"}
    )
    assert scored.status_code == 200 and scored.json()["passed"] is True
    again = await reviewer.post("/api/v1/quality/S-low/score", json={"points": FULL})
    assert again.status_code == 409
    bad = await reviewer.post("/api/v1/quality/S-new/score", json={"points": {"greeting": 5}})
    assert bad.status_code == 422
    partial = {**FULL, "greeting": 0, "conduct": 0}
    assert (await reviewer.post("/api/v1/quality/S-new/score", json={"points": partial})).json()[
        "total"
    ] == 90.0
    assert (
        await reviewer.post("/api/v1/quality/S-x/score", json={"points": FULL})
    ).status_code == 404
    # Nobody reviews their own session, even holding the reviewer role.
    await service.consider(CAT, session_id="S-own", business="cash_deposit", teller_id="r1",
                           liveness_score=10, closed_at=NOW, salt=salt)  # fmt: skip
    own = await reviewer.post("/api/v1/quality/S-own/score", json={"points": FULL})
    assert own.status_code == 409
    assert await service.quality_by_teller(
        NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=1)
    ) == {"t1": [100.0, 90.0]}
    assert await ReviewItem.filter(reviewed_at__isnull=True).count() == 1
