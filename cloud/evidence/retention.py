"""Retention: how long a session's evidence is kept, and whether it may go now (pure).

Each business type carries ``retention_days`` in the catalogue (bank policy; the
dual-recording rules for product sales require at least six months after the product ends,
and as long as a dispute lasts). A legal hold — set by an auditor for a complaint, dispute or
court request — blocks deletion whatever the date.
"""

from __future__ import annotations

import datetime as dt

from cloud.catalogue import Business


def retain_until(business: Business, closed_at: dt.datetime) -> dt.datetime:
    return closed_at + dt.timedelta(days=business.retention_days)


def why_not_deletable(
    retain_until_at: dt.datetime, legal_hold: bool, deleted: bool, now: dt.datetime
) -> str | None:
    """None if the evidence may be deleted at ``now``; otherwise the reason it may not."""
    if deleted:
        return "already deleted"
    if legal_hold:
        return "under legal hold"
    if now < retain_until_at:
        return f"retention runs until {retain_until_at.isoformat()}"
    return None
