"""The alert monitor: evaluates ``fleet.alerts`` rules over the fleet on a beat, stores the
outcome de-duplicated, and tells a webhook about alerts opened and cleared."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

import httpx

from cloud import Terminal, audit, fenced
from common.periodic import run_every
from fleet import alerts as al
from fleet import misbehaviour as mb
from fleet.models import AlertDoc, RolloutDoc
from fleet.settings import FleetSettings
from provisioning.dynsec import BrokerAdminError
from provisioning.fanout import BrokerAdmins

log = logging.getLogger("cuntong.fleet.alerts")

LIVE = ["open", "acked"]
#: Who the audit log names for a disable the system did (``misbehaviour_auto_disable``).
AUTO_ACTOR = "system:misbehaviour"


def public(a: AlertDoc) -> dict[str, Any]:
    return {
        "id": a.id,
        "kind": a.kind,
        "terminal_id": a.terminal_id,
        "subject": a.subject,
        "severity": a.severity,
        "message": a.message,
        "state": a.state,
        "first_at": a.first_at.isoformat(),
        "last_at": a.last_at.isoformat(),
        "acked_at": a.acked_at.isoformat() if a.acked_at else None,
        "acked_by": a.acked_by,
        "cleared_at": a.cleared_at.isoformat() if a.cleared_at else None,
    }


class AlertMonitor:
    def __init__(
        self,
        settings: FleetSettings,
        clock: Callable[[], dt.datetime],
        http: Callable[[], httpx.AsyncClient] = lambda: httpx.AsyncClient(timeout=5),
        broker: BrokerAdmins | None = None,
    ) -> None:
        self.s = settings
        self.clock = clock
        self.http = http
        #: The brokers' control, for ``misbehaviour_auto_disable`` (None: not secured).
        self.broker = broker
        self.rules = al.Rules(
            dt.timedelta(seconds=settings.offline_alert_after_s),
            settings.disk_alert_pct,
            settings.temp_alert_c,
            settings.flap_alert_count,
        )
        self.watch = mb.Watch(
            mb.Thresholds(
                dt.timedelta(seconds=settings.misbehaviour_window_s),
                settings.misbehaviour_rejects,
                settings.misbehaviour_flaps,
            )
        )

    def signal(self, terminal_id: str, signal: str) -> None:
        """Ingest's per-terminal signal (``IngestConsumer.on_signal``)."""
        self.watch.record(terminal_id, signal, self.clock())

    async def run(self) -> None:
        await run_every(self.evaluate, self.s.alert_interval_s, name="alert evaluation", logger=log)

    async def evaluate(self) -> al.Plan:
        now = self.clock()
        active: dict[al.Key, str] = {}
        rows = await Terminal.all().values_list("id", "online", "status_changed_at", "health")
        for tid, online, changed, health in rows:
            health = health or {}
            state = al.TerminalState(
                tid, online, changed, health.get("metrics", {}), health.get("peripherals", {})
            )
            active |= al.conditions(state, now, self.rules)
        active |= self.watch.conditions(now)
        live = await AlertDoc.filter(state__in=LIVE, kind__in=[k.value for k in al.TERMINAL_KINDS])
        by_key = {(a.kind, a.terminal_id, a.subject): a for a in live}
        plan = al.reconcile(by_key, active)
        opened = [
            AlertDoc(
                kind=k[0],
                terminal_id=k[1],
                subject=k[2],
                severity=al.SEVERITY[al.Kind(k[0])],
                message=active[k][:256],
                state="open",
                first_at=now,
                last_at=now,
            )
            for k in plan.open
        ]
        touched = [by_key[k] for k in plan.touch]
        for a in touched:
            a.last_at, a.count, a.message = (
                now,
                a.count + 1,
                active[(a.kind, a.terminal_id, a.subject)][:256],
            )
        cleared = [by_key[k] for k in plan.clear]
        # Fenced (``cloud.fenced``): only the lease holder at its epoch writes the alert
        # rows; a paused old leader waking with an evaluation decided is refused (LeaseLost)
        # and neither opens a second copy of an alert nor clears one the new leader keeps.
        async with fenced():
            if opened:
                await AlertDoc.bulk_create(opened, batch_size=500)
            if touched:
                await AlertDoc.bulk_update(
                    touched, fields=["last_at", "count", "message"], batch_size=500
                )
            if cleared:
                await AlertDoc.filter(id__in=[a.id for a in cleared]).update(
                    state="cleared", cleared_at=now
                )
        for a in cleared:
            a.state, a.cleared_at = "cleared", now
        await self.notify([("opened", a) for a in opened] + [("cleared", a) for a in cleared])
        if self.s.misbehaviour_auto_disable:
            for a in opened:
                if a.kind == mb.KIND:
                    await self.auto_disable(a)
        return plan

    async def auto_disable(self, alert: AlertDoc) -> None:
        """Disable the alert's terminal at the broker, as the operator's button does, and
        audit it under ``AUTO_ACTOR`` with the evidence. A broker that does not answer is
        logged; the alert stays open for the operator."""
        if self.broker is None:
            log.warning("misbehaviour_auto_disable is on but no broker control (not secured)")
            return
        try:
            await self.broker.disable(alert.terminal_id)
        except BrokerAdminError as err:
            log.error("auto-disable of %s failed: %s", alert.terminal_id, err)
            return
        await audit.record(
            AUTO_ACTOR,
            "fleet_broker_disable",
            alert.terminal_id,
            self.clock(),
            auto=True,
            alert=alert.id,
            evidence=alert.message,
        )
        log.warning("terminal %s disabled at the broker: %s", alert.terminal_id, alert.message)

    async def rollout_aborted(self, doc: RolloutDoc) -> None:
        """Hook for the rollout engine: one critical alert per aborted rollout."""
        now = self.clock()
        async with fenced():
            alert, created = await self._rollout_alert(doc, now)
        if created:
            await self.notify([("opened", alert)])

    async def _rollout_alert(self, doc: RolloutDoc, now: dt.datetime) -> tuple[AlertDoc, bool]:
        return await AlertDoc.get_or_create(
            {
                "severity": al.SEVERITY[al.Kind.ROLLOUT_ABORTED],
                "message": f"rollout {doc.name!r} aborted: {doc.reason}"[:256],
                "state": "open",
                "first_at": now,
                "last_at": now,
            },
            kind=al.Kind.ROLLOUT_ABORTED.value,
            terminal_id="",
            subject=doc.id,
        )

    async def notify(self, changes: list[tuple[str, AlertDoc]]) -> None:
        if not changes or not self.s.alert_webhook_url:
            return
        async with self.http() as http:
            for event, alert in changes:
                try:
                    r = await http.post(
                        self.s.alert_webhook_url, json=al.notification(event, public(alert))
                    )
                    r.raise_for_status()
                except httpx.HTTPError as err:
                    log.warning("alert webhook failed (%s): %s", event, err)
