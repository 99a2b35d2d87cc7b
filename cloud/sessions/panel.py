"""The teller's customer panel for one session (pure: rows in, a JSON-ready dict out).

What the teller sees beside the video: the business (code, Chinese and English name from
the catalogue), language, elderly flag, whether the customer chose to be called back
(``ring_back``: they may have stepped away from the screen), how long the customer has
waited, the customer's name and ID number masked (``cloud.auth.masking``: the teller has
the customer on video and the card in the reader; full numbers are a supervisor's need),
the liveness verdict once the terminal sent it, and the state history.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cloud.auth.masking import mask_id_number, mask_name
from cloud.catalogue import Catalogue
from cloud.sessions.skills import LANGUAGES


@dataclass(frozen=True, slots=True)
class Step:
    """One stored transition, as the panel shows it."""

    at: dt.datetime
    event: str
    from_state: str | None
    to_state: str
    cause: str
    teller_id: str | None


def _business(code: str, catalogue: Catalogue) -> dict[str, Any]:
    entry = catalogue.businesses.get(code)
    if entry is None:  # a code the catalogue has dropped since the call
        return {"code": code, "name_zh": code, "name_en": code, "risk": None}
    return {
        "code": code,
        "name_zh": entry.name_zh,
        "name_en": entry.name_en,
        "risk": entry.risk.value,
    }


def waited_s(requested_at: dt.datetime, steps: Sequence[Step], now: dt.datetime) -> float:
    """Request to first connection; while never connected, request to now (or to the end)."""
    for step in steps:
        if step.to_state == "connected":
            return (step.at - requested_at).total_seconds()
    ended = next((s.at for s in steps if s.to_state in ("abandoned", "failed")), None)
    return ((ended or now) - requested_at).total_seconds()


def panel(
    row: Any,
    steps: Sequence[Step],
    catalogue: Catalogue,
    now: dt.datetime,
    teller_id: str | None,
) -> dict[str, Any]:
    """The panel of a ``TellerSession`` row (attributes read, never written)."""
    language = LANGUAGES.get(row.language)
    customer = None
    if row.customer_name or row.customer_id_number:
        customer = {
            "name": mask_name(row.customer_name or ""),
            "id_number": mask_id_number(row.customer_id_number or ""),
        }
    return {
        "session": row.id,
        "terminal": row.terminal_id,
        "state": row.state,
        "teller": teller_id,
        "business": _business(row.business, catalogue),
        "language": {"code": row.language, "name": language.name if language else row.language},
        "elderly": row.elderly,
        "ring_back": row.ring_back,
        "requested_at": row.requested_at.isoformat(),
        "waited_s": round(waited_s(row.requested_at, steps, now), 1),
        "customer": customer,
        "liveness": row.liveness,
        "rating": row.rating,
        "resolved": row.resolved,
        "recording": None
        if row.recording_path is None
        else {"path": row.recording_path, "sha256": row.recording_sha256},
        "history": [
            {
                "at": s.at.isoformat(),
                "event": s.event,
                "from": s.from_state,
                "to": s.to_state,
                "cause": s.cause,
                "teller": s.teller_id,
            }
            for s in steps
        ],
    }
