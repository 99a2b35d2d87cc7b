"""/ui/{name}: the front-end modules every page shares (``common.web``: DOM helpers, i18n,
sign-in), one copy for the teller desk, the watch page, the fleet dashboard and the big screen.

Public like the pages that import them: they hold no data, every call they make is guarded.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

from common import web

router = APIRouter(prefix="/ui", tags=["shared front end"], include_in_schema=False)


@router.get("/{name}")
async def shared_asset(name: str) -> Response:
    found = web.asset(name)  # a whitelist: no listing, no path tricks
    if found is None:
        raise HTTPException(404, "not found")
    body, ctype = found
    # no-cache: pages stay open all day; a redeploy must reach them on reload.
    return Response(body, media_type=ctype, headers={"Cache-Control": "no-cache"})
