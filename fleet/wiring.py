"""How the cloud app takes in fleet operations: ``routers()``, ``pages()`` and ``start``.

``start`` builds the fleet's services once (``fleet.api.deps.FleetServices``: the command
sender, the rollout engine and, in secured mode, the package store), keeps them where
``fleet.api.deps`` reads them, and returns their background jobs: singletons, which the
cloud runs only on the API replica that holds its lease (``cloud.lease``); sender and engine
need ingest on.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, FastAPI

from cloud import CloudServices, Security, audit
from common.periodic import run_every
from common.settings import CloudSettings
from fleet import brokerwatch, shadows
from fleet.alerting import AlertMonitor
from fleet.api import alerts, broker, commands, dashboard, packages, pinkeys, registry
from fleet.api import logs as logs_api
from fleet.api import rollouts as rollouts_api
from fleet.api import shadows as shadows_api
from fleet.api.deps import FleetServices, install
from fleet.logstore import LogStore
from fleet.packages import PackageStore
from fleet.pinkeys import LOAD, PinKeyRotation
from fleet.rollouts import RolloutEngine
from fleet.sender import CommandSender
from fleet.settings import FleetSettings
from hsm import HsmClient


def routers() -> list[APIRouter]:
    """The fleet's JSON routers (the app mounts them under ``/api/v1``)."""
    return [
        registry.router,
        commands.router,
        shadows_api.router,
        rollouts_api.router,
        packages.router,
        packages.downloads,
        alerts.router,
        broker.router,
        pinkeys.router,
        logs_api.router,
        logs_api.uploads,
    ]


def pages() -> list[APIRouter]:
    """The fleet dashboard (``/fleet``)."""
    return [dashboard.router]


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
    app: FastAPI, services: CloudServices, security: Security | None
) -> list[tuple[str, Callable[[], Coroutine[Any, Any, None]]]]:
    settings = services.settings
    store = logs = None
    # The broker's control link: the operator's disable / enable (fleet.api.broker).
    admin = security.admin if security is not None else None
    if security is not None and settings.state_dir is not None:
        store = PackageStore(settings.state_dir / "packages", security.keys.command_key)
        logs = LogStore(
            settings.state_dir / "fleet-logs", security.suite, security.provisioner.ca.issuing
        )
    if not settings.ingest:
        install(app, FleetServices(None, None, store, admin, logs=logs))
        return []
    command_sender = sender(settings, security)
    rollout_engine = engine(command_sender)
    fleet_settings = FleetSettings()
    rotation = pin_keys(fleet_settings, command_sender)
    install(app, FleetServices(command_sender, rollout_engine, store, admin, rotation, logs))
    monitor = AlertMonitor(fleet_settings, lambda: dt.datetime.now(dt.UTC), broker=admin)
    rollout_engine.on_abort.append(monitor.rollout_aborted)
    if services.ingest is not None:  # rejected messages and flaps, per terminal
        services.ingest.on_signal.append(monitor.signal)
        # Command replies, on every replica (not a singleton): a reply that arrives while
        # the leader dies is recorded by whichever replica hears it.
        services.ingest.on_replies.append(command_sender.take_replies)
    # Joins outside a grant's room, per terminal: the desk's gate exists on the leader only,
    # built anew at each of its terms.
    services.on_desk.append(lambda desk: desk.gate.on_signal.append(monitor.signal))
    # Singletons: the cloud runs them on the replica that holds its lease (``cloud.lease``).
    jobs: list[tuple[str, Callable[[], Coroutine[Any, Any, None]]]] = [
        ("fleet-sender", command_sender.run),
        ("fleet-rollouts", rollout_engine.run),
        ("fleet-alerts", monitor.run),
    ]
    broker_logs = fleet_settings.broker_log_files
    if broker_logs:  # refused SUBSCRIBEs and PUBLISHes, per terminal (the leader's monitor)
        refusals = lambda: brokerwatch.follow(broker_logs, monitor.signal)  # noqa: E731
        jobs.append(("fleet-broker-refusals", refusals))
    if rotation is not None:
        jobs.append(("fleet-pin-keys", rotation.run))
    if logs is not None:
        jobs.append(("fleet-log-retention", log_retention(fleet_settings, logs)))
    return jobs


#: Who the audit log names for bundles deleted when their retention ended.
RETENTION_ACTOR = "system:log-retention"
log = logging.getLogger(__name__)


def log_retention(s: FleetSettings, logs: LogStore) -> Callable[[], Coroutine[Any, Any, None]]:
    """The leader's sweep of uploaded log bundles past ``log_retention_days``, each deletion
    audited. (With several API hosts the store folder is shared, so one sweeper suffices.)"""
    keep = dt.timedelta(days=s.log_retention_days)

    async def beat() -> None:
        at = dt.datetime.now(dt.UTC)
        for upload_id in await asyncio.to_thread(logs.sweep, at, keep):
            await audit.record(
                RETENTION_ACTOR, "fleet_logs_expired", upload_id, at, days=s.log_retention_days
            )

    return lambda: run_every(beat, s.log_sweep_interval_s, name="log retention", logger=log)


def pin_keys(s: FleetSettings, command_sender: CommandSender) -> PinKeyRotation | None:
    """The PIN key rotation job, its reply hook installed on the sender; None without an HSM."""
    if not s.hsm_url or s.hsm_secret_file is None:
        return None
    hsm = HsmClient(s.hsm_url, s.hsm_secret_file.read_text().strip())
    rotation = PinKeyRotation(
        hsm, command_sender.kick, lambda: dt.datetime.now(dt.UTC), s.pin_key_rotation_s
    )
    command_sender.on_result[LOAD] = rotation.on_result
    return rotation
