"""/teller: the teller's web app, and /teller/watch, the supervisor's page for listening in
on a call (plain HTML, CSS and ES modules shipped in the package).

No build step and nothing fetched from the internet: the page, its scripts and the shared
look (the fleet dashboard's ``/fleet/static/style.css``) all come from this cloud.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import FileResponse

from cloud.api.deps import OversightDep, require
from cloud.auth.roles import Role

router = APIRouter(prefix="/teller", tags=["teller app"], include_in_schema=False)

ROOT = Path(__file__).resolve().parents[2] / "sessions" / "static"
#: Only these files are served: no directory listing, no path tricks.
ASSETS = {
    "teller.css": "text/css",
    "teller-app.js": "text/javascript",
    "teller-call.js": "text/javascript",
    "teller-data.js": "text/javascript",
    "teller-i18n.js": "text/javascript",
    "teller-media.js": "text/javascript",
    "teller-watch.js": "text/javascript",
}


@router.get("")
@router.get("/")
async def index() -> FileResponse:
    # no-cache: a teller keeps the tab open all day; a redeploy must reach them on reload.
    return FileResponse(
        ROOT / "teller.html", media_type="text/html", headers={"Cache-Control": "no-cache"}
    )


@router.get("/watch")
async def watch_page() -> FileResponse:
    """The supervisor's page: calls in progress, listening in on one."""
    return FileResponse(
        ROOT / "teller-watch.html", media_type="text/html", headers={"Cache-Control": "no-cache"}
    )


@router.get("/static/{name}")
async def asset(name: str) -> FileResponse:
    if name not in ASSETS:
        raise HTTPException(404, "not found")
    return FileResponse(ROOT / name, media_type=ASSETS[name], headers={"Cache-Control": "no-cache"})


@router.get("/businesses", dependencies=[Depends(require(Role.TELLER, Role.SUPERVISOR))])
async def businesses(ov: OversightDep) -> list[dict[str, Any]]:
    """The business catalogue's codes and names (the transfer list, names on offers)."""
    catalogue = ov.catalogue
    return [
        {"code": b.code, "name_zh": b.name_zh, "name_en": b.name_en, "risk": b.risk.value}
        for b in catalogue.businesses.values()
    ]
