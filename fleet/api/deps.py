"""Dependencies of the fleet routers: who may read and operate, and the fleet's services.

Reading the fleet is for the same roles as the terminals API (``FLEET_READERS``);
changing it — commands, shadows, groups, tags, rollouts, packages, alerts — needs the
``fleet_operator`` role (``cloud.auth``; there is no implicit super-user).

The services (``FleetServices``) are built once when the app starts (``fleet.wiring.start``
calls ``install``) and ``services`` below is the only reader. A test replaces one with
``app.dependency_overrides[deps.sender_or_none] = lambda: fake``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException
from starlette.requests import HTTPConnection

from cloud import FLEET_READERS, Principal, Role, audit, require
from fleet.logstore import LogStore
from fleet.packages import PackageStore
from fleet.pinkeys import PinKeyRotation
from fleet.rollouts import RolloutEngine
from fleet.sender import CommandSender
from provisioning.fanout import BrokerAdmins

Readers = [Depends(require(*FLEET_READERS))]
Operator = [Depends(require(Role.FLEET_OPERATOR))]


@dataclass(frozen=True, slots=True)
class FleetServices:
    #: The command sender and the rollout engine run only where ingest does.
    sender: CommandSender | None
    rollouts: RolloutEngine | None
    #: Packages need the secured mode (the command signing key).
    packages: PackageStore | None
    #: The broker's dynamic-security control (secured mode): disable / enable a terminal.
    broker: BrokerAdmins | None = None
    #: PIN key rotation (``fleet.pinkeys``): where ingest runs and an HSM is configured.
    pin_keys: PinKeyRotation | None = None
    #: Log bundles terminals upload (secured mode): ``fleet.logstore``.
    logs: LogStore | None = None


def install(app: FastAPI, services: FleetServices) -> None:
    """Keep the fleet's services on the app (once, at start-up)."""
    app.state.fleet_services = services


def services(conn: HTTPConnection) -> FleetServices:
    built: FleetServices = conn.app.state.fleet_services
    return built


Services = Annotated[FleetServices, Depends(services)]


def sender_or_none(s: Services) -> CommandSender | None:
    return s.sender


def rollouts_or_none(s: Services) -> RolloutEngine | None:
    return s.rollouts


def packages_or_none(s: Services) -> PackageStore | None:
    return s.packages


def sender(found: Annotated[CommandSender | None, Depends(sender_or_none)]) -> CommandSender:
    if found is None:
        raise HTTPException(503, "the fleet command sender is not running (ingest disabled)")
    return found


def packages(found: Annotated[PackageStore | None, Depends(packages_or_none)]) -> PackageStore:
    if found is None:
        raise HTTPException(503, "packages need the secured mode (a signing key)")
    return found


Sender = Annotated[CommandSender, Depends(sender)]
Store = Annotated[PackageStore, Depends(packages)]
#: The rollout engine, or None where this process does not ingest (routes answer 503).
PackagesOrNone = Annotated[PackageStore | None, Depends(packages_or_none)]
RolloutsOrNone = Annotated[RolloutEngine | None, Depends(rollouts_or_none)]


def broker_admin(s: Services) -> BrokerAdmins:
    if s.broker is None:
        raise HTTPException(503, "broker control needs the secured mode (CUNTONG_CLOUD_STATE_DIR)")
    return s.broker


Broker = Annotated[BrokerAdmins, Depends(broker_admin)]


def log_store(s: Services) -> LogStore:
    if s.logs is None:
        raise HTTPException(503, "log uploads need the secured mode (CUNTONG_CLOUD_STATE_DIR)")
    return s.logs


Logs = Annotated[LogStore, Depends(log_store)]


def pin_keys(s: Services) -> PinKeyRotation:
    if s.pin_keys is None:
        raise HTTPException(
            503, "PIN key rotation is off: set CUNTONG_FLEET_HSM_URL (and ingest must run here)"
        )
    return s.pin_keys


PinKeys = Annotated[PinKeyRotation, Depends(pin_keys)]


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


#: The signed-in fleet operator, for routes that record who did what.
Who = Annotated[Principal, Depends(require(Role.FLEET_OPERATOR))]


async def audited(who: Principal, action: str, target: str, **detail: object) -> None:
    """Every fleet change goes to the audit log (who, what, on which terminals or job)."""
    await audit.record(who.account_id, action, target, now(), **detail)
