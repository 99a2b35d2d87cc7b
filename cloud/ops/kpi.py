"""Teller KPIs and the half-hourly staffing suggestion, from contact records (pure).

Definitions (chosen and fixed here, since sources differ — see domain reference §2.5):
- offered: every customer request that reached the queue; a *short abandon* (customer left
  within ``short_abandon_s``, default 5 s — a mis-press at the terminal) is not counted at all;
- service level: answered within ``target_s`` (20 s) ÷ offered;
- abandonment: abandoned ÷ (handled + abandoned)  (Google CCAI's definition);
- ASA: mean wait of answered contacts;
- AHT: mean of talk time + after-contact work of handled contacts (Amazon "agent active time");
- FCR: resolved at first contact ÷ handled contacts whose resolution is known;
- satisfaction: mean customer rating (1–5) and the share rating 4 or 5;
- quality: mean quality-inspection score of the teller's reviewed sessions.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from cloud.ops import erlang

HALF_HOUR = dt.timedelta(minutes=30)


@dataclass(frozen=True, slots=True)
class ContactRecord:
    """One customer request, as the teller-session service records it."""

    session_id: str
    business: str
    offered_at: dt.datetime
    answered_at: dt.datetime | None = None
    ended_at: dt.datetime | None = None
    teller_id: str | None = None
    wrap_up_s: float = 0.0
    resolved_first_contact: bool | None = None
    satisfaction: int | None = None

    @property
    def wait_s(self) -> float | None:
        end = self.answered_at or self.ended_at
        return (end - self.offered_at).total_seconds() if end else None

    @property
    def handle_s(self) -> float | None:
        if self.answered_at is None or self.ended_at is None:
            return None
        return (self.ended_at - self.answered_at).total_seconds() + self.wrap_up_s


@dataclass(frozen=True, slots=True)
class Kpis:
    offered: int
    handled: int
    abandoned: int
    service_level: float | None
    asa_s: float | None
    abandonment: float | None
    aht_s: float | None
    fcr: float | None
    satisfaction: float | None
    satisfied_share: float | None
    quality: float | None = None


def _mean(values: Sequence[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _share(hits: int, total: int) -> float | None:
    return hits / total if total else None


def kpis(
    records: Iterable[ContactRecord],
    *,
    target_s: float = 20.0,
    short_abandon_s: float = 5.0,
    quality_scores: Sequence[float] = (),
) -> Kpis:
    handled, abandoned = [], []
    for r in records:
        if r.answered_at is not None:
            handled.append(r)
        elif r.ended_at is not None and (r.wait_s or 0) >= short_abandon_s:
            abandoned.append(r)
    offered = len(handled) + len(abandoned)
    within = sum(1 for r in handled if (r.wait_s or 0) <= target_s)
    known = [r for r in handled if r.resolved_first_contact is not None]
    rated = [r.satisfaction for r in handled if r.satisfaction is not None]
    handles = [h for r in handled if (h := r.handle_s) is not None]
    return Kpis(
        offered=offered,
        handled=len(handled),
        abandoned=len(abandoned),
        service_level=_share(within, offered),
        asa_s=_mean([r.wait_s or 0.0 for r in handled]),
        abandonment=_share(len(abandoned), offered),
        aht_s=_mean(handles),
        fcr=_share(sum(1 for r in known if r.resolved_first_contact), len(known)),
        satisfaction=_mean([float(s) for s in rated]),
        satisfied_share=_share(sum(1 for s in rated if s >= 4), len(rated)),
        quality=_mean(list(quality_scores)),
    )


def per_teller(
    records: Iterable[ContactRecord],
    quality: Mapping[str, Sequence[float]] | None = None,
    **options: float,
) -> dict[str, Kpis]:
    """KPIs of each teller over the contacts they answered (abandons have no teller)."""
    by_teller: dict[str, list[ContactRecord]] = defaultdict(list)
    for r in records:
        if r.teller_id is not None:
            by_teller[r.teller_id].append(r)
    scores = quality or {}
    return {
        teller: kpis(rs, quality_scores=scores.get(teller, ()), **options)
        for teller, rs in sorted(by_teller.items())
    }


@dataclass(frozen=True, slots=True)
class IntervalPlan:
    start: dt.datetime
    calls: int
    aht_s: float
    staffing: erlang.Staffing


def _slot(at: dt.datetime) -> dt.datetime:
    at = at.astimezone(dt.UTC)
    return at.replace(minute=at.minute - at.minute % 30, second=0, microsecond=0)


def staffing_plan(
    records: Iterable[ContactRecord],
    *,
    target_sl: float = 0.8,
    target_s: float = 20.0,
    shrinkage: float = 0.0,
    default_aht_s: float = 300.0,
) -> list[IntervalPlan]:
    """Erlang C agents per half-hour from the observed arrivals and handle times.

    Each interval uses its own mean handle time; an interval with arrivals but no completed
    contact falls back to the overall mean (or ``default_aht_s`` with no data at all).
    """
    slots: dict[dt.datetime, list[ContactRecord]] = defaultdict(list)
    for r in records:
        slots[_slot(r.offered_at)].append(r)
    every = [h for rs in slots.values() for r in rs if (h := r.handle_s) is not None]
    overall = _mean(every) or default_aht_s
    plan = []
    for start in sorted(slots):
        rs = slots[start]
        aht = _mean([h for r in rs if (h := r.handle_s) is not None]) or overall
        staffing = erlang.agents_needed(
            len(rs),
            HALF_HOUR.total_seconds(),
            aht,
            target_sl=target_sl,
            target_s=target_s,
            shrinkage=shrinkage,
        )
        plan.append(IntervalPlan(start, len(rs), aht, staffing))
    return plan
