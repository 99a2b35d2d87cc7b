"""Dependencies of the fleet routers: who may read and operate, and the command sender.

Reading the fleet is for the same roles as the terminals API (``FLEET_READERS``);
changing it — commands, shadows, groups, tags, rollouts, packages, alerts — needs the
``fleet_operator`` role (``cloud.auth``; there is no implicit super-user).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from cloud.api.routes.terminals import FLEET_READERS
from cloud.auth import audit
from cloud.auth.deps import Principal, require
from cloud.auth.roles import Role
from fleet.sender import CommandSender

Readers = [Depends(require(*FLEET_READERS))]
Operator = [Depends(require(Role.FLEET_OPERATOR))]


def _sender(request: Request) -> CommandSender:
    sender = getattr(request.app.state, "fleet", None)
    if sender is None:
        raise HTTPException(503, "the fleet command sender is not running (ingest disabled)")
    return sender  # type: ignore[no-any-return]


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


Sender = Annotated[CommandSender, Depends(_sender)]
#: The signed-in fleet operator, for routes that record who did what.
Who = Annotated[Principal, Depends(require(Role.FLEET_OPERATOR))]


async def audited(who: Principal, action: str, target: str, **detail: object) -> None:
    """Every fleet change goes to the audit log (who, what, on which terminals or job)."""
    await audit.record(who.account_id, action, target, now(), **detail)
