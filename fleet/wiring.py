"""How the cloud app takes in fleet operations: ``routers()`` and ``start(app, ...)``.

``start`` puts the command sender (``app.state.fleet``), the rollout engine
(``app.state.rollouts``) and, in secured mode, the package store (``app.state.packages``)
on the app and returns their background tasks; sender and engine run wherever ingest does.
"""

from __future__ import annotations

import asyncio
import datetime as dt

from fastapi import APIRouter, FastAPI

from cloud.security import Security
from common.settings import CloudSettings
from fleet import shadows
from fleet.alerting import AlertMonitor
from fleet.api import alerts, broker, commands, dashboard, packages, registry
from fleet.api import rollouts as rollouts_api
from fleet.api import shadows as shadows_api
from fleet.packages import PackageStore
from fleet.rollouts import RolloutEngine
from fleet.sender import CommandSender
from fleet.settings import FleetSettings


def routers() -> list[APIRouter]:
    return [
        registry.router,
        commands.router,
        shadows_api.router,
        rollouts_api.router,
        packages.router,
        packages.downloads,
        alerts.router,
        broker.router,
        dashboard.router,
    ]


def sender(settings: CloudSettings, security: Security | None) -> CommandSender:
    """The command sender with the shadow hooks installed; run it as a task."""
    s = CommandSender(settings, security)
    on_result, on_online = shadows.hooks(lambda: dt.datetime.now(dt.UTC))
    s.on_result[shadows.DELTA] = on_result
    s.on_online.append(on_online)
    return s


def engine(sender: CommandSender) -> RolloutEngine:
    """The rollout engine, queueing through ``sender`` and woken by its outcomes."""
    e = RolloutEngine(sender.kick, lambda: dt.datetime.now(dt.UTC))
    sender.on_recorded.append(e.wake)
    return e


def start(
    app: FastAPI, settings: CloudSettings, security: Security | None
) -> list[asyncio.Task[None]]:
    app.state.fleet = app.state.rollouts = app.state.packages = None
    # The broker's control link: the operator's disable / enable (fleet.api.broker).
    app.state.broker_admin = security.admin if security is not None else None
    if security is not None and settings.state_dir is not None:
        app.state.packages = PackageStore(
            settings.state_dir / "packages", security.keys.command_key
        )
    if not settings.ingest:
        return []
    app.state.fleet = sender(settings, security)
    app.state.rollouts = engine(app.state.fleet)
    monitor = AlertMonitor(FleetSettings(), lambda: dt.datetime.now(dt.UTC))
    app.state.rollouts.on_abort.append(monitor.rollout_aborted)
    if app.state.ingest is not None:  # rejected messages and flaps, per terminal
        app.state.ingest.on_signal.append(monitor.signal)
    return [
        asyncio.create_task(app.state.fleet.run(), name="fleet-sender"),
        asyncio.create_task(app.state.rollouts.run(), name="fleet-rollouts"),
        asyncio.create_task(monitor.run(), name="fleet-alerts"),
    ]
