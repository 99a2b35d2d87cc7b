"""Dependencies of the fleet routers: the operator guard and the command sender."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials

from cloud.security import _bearer, require_admin
from fleet.sender import CommandSender


async def operator(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Operator routes need the admin token when one is configured (development: open)."""
    if request.app.state.settings.admin_token:
        await require_admin(request, credentials)


def _sender(request: Request) -> CommandSender:
    sender = getattr(request.app.state, "fleet", None)
    if sender is None:
        raise HTTPException(503, "the fleet command sender is not running (ingest disabled)")
    return sender  # type: ignore[no-any-return]


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


Sender = Annotated[CommandSender, Depends(_sender)]
Operator = [Depends(operator)]
