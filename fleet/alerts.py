"""Alert rules and de-duplication. Pure.

``conditions(terminal, now, rules)`` names what is wrong with one terminal right now, as
keys ``(kind, terminal_id, subject)``. ``reconcile(open_keys, active_keys)`` says which
alerts to open (new), which to touch (still active: no new alert, no new notification) and
which to clear (no longer active). Acknowledging only silences: an acknowledged alert stays
until its condition clears. Rollout aborts are raised by the rollout engine and cleared by
an operator, since no terminal condition goes away to clear them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Kind(StrEnum):
    OFFLINE = "offline"
    PERIPHERAL_FAULT = "peripheral_fault"
    DISK_FULL = "disk_full"
    HIGH_TEMPERATURE = "high_temperature"
    ROLLOUT_ABORTED = "rollout_aborted"
    #: Rejected messages or a flapping connection past a threshold (``fleet.misbehaviour``).
    MISBEHAVING = "misbehaving"
    LINK_FLAPPING = "link_flapping"
    SPOOL_FULL = "spool_full"


SEVERITY: dict[Kind, str] = {
    Kind.OFFLINE: "major",
    Kind.PERIPHERAL_FAULT: "major",
    Kind.DISK_FULL: "warning",
    Kind.HIGH_TEMPERATURE: "warning",
    Kind.ROLLOUT_ABORTED: "critical",
    Kind.MISBEHAVING: "major",
    Kind.LINK_FLAPPING: "warning",
    Kind.SPOOL_FULL: "critical",  # business events are being refused on the terminal
}
#: Kinds derived from terminal state, which ``reconcile`` may clear by itself.
TERMINAL_KINDS = frozenset(Kind) - {Kind.ROLLOUT_ABORTED}

Key = tuple[str, str, str]  # (kind, terminal_id, subject)


@dataclass(frozen=True, slots=True)
class Rules:
    offline_after: dt.timedelta
    disk_pct: float
    temp_c: float
    #: Link drops in the agent's window (``edge.alarms.FLAP_SPAN_S``) that make a flap.
    flaps: int = 5


@dataclass(frozen=True, slots=True)
class TerminalState:
    id: str
    online: bool
    status_changed_at: dt.datetime | None
    metrics: Mapping[str, float]
    peripherals: Mapping[str, str]


def conditions(t: TerminalState, now: dt.datetime, rules: Rules) -> dict[Key, str]:
    """Active conditions of one terminal with a human message each."""
    out: dict[Key, str] = {}
    since = t.status_changed_at
    if not t.online and since is not None and now - since >= rules.offline_after:
        out[(Kind.OFFLINE, t.id, "")] = (
            f"offline for {int((now - since).total_seconds() // 60)} min"
        )
    if not t.online:
        return out  # stale health of an offline terminal raises nothing new
    for name, state in sorted(t.peripherals.items()):
        if state == "fault":
            out[(Kind.PERIPHERAL_FAULT, t.id, name)] = f"peripheral {name} reports a fault"
    disk = t.metrics.get("disk_pct")
    if disk is not None and disk >= rules.disk_pct:
        out[(Kind.DISK_FULL, t.id, "")] = f"disk {disk:.0f}% full"
    # Metric names as the agent reports them (edge.alarms; fleet may not import edge).
    flaps = t.metrics.get("link_flaps")
    if flaps is not None and flaps >= rules.flaps:
        out[(Kind.LINK_FLAPPING, t.id, "")] = f"link dropped {flaps:.0f} times in 10 min"
    refused = t.metrics.get("spool_refused")
    if refused:
        out[(Kind.SPOOL_FULL, t.id, "")] = (
            f"spool full: {refused:.0f} business events refused in the last hour"
        )
    temp = t.metrics.get("temp_c")
    if temp is not None and temp >= rules.temp_c:
        out[(Kind.HIGH_TEMPERATURE, t.id, "")] = f"temperature {temp:.1f} °C"
    return out


@dataclass(frozen=True, slots=True)
class Plan:
    open: list[Key]
    touch: list[Key]
    clear: list[Key]


def reconcile(open_keys: Iterable[Key], active: Iterable[Key]) -> Plan:
    """What to do given the alerts not yet cleared and the conditions active now."""
    current = set(open_keys)
    now_active = set(active)
    return Plan(
        open=sorted(now_active - current),
        touch=sorted(now_active & current),
        clear=sorted(k for k in current - now_active if k[0] in TERMINAL_KINDS),
    )


def notification(event: str, alert: Mapping[str, Any]) -> dict[str, Any]:
    """The webhook body: ``event`` is 'opened' or 'cleared'."""
    return {"event": event, "alert": dict(alert)}
