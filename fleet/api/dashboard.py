"""/fleet: the fleet operations dashboard (plain HTML, CSS and JS shipped in the package)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

router = APIRouter(prefix="/fleet", tags=["fleet dashboard"], include_in_schema=False)

ROOT = Path(__file__).resolve().parent.parent / "dashboard"
#: Only these files are served: no directory listing, no path tricks.
ASSETS = {
    "style.css": "text/css",
    "app.js": "text/javascript",
    "chart.js": "text/javascript",
    "i18n.js": "text/javascript",
    "schema.js": "text/javascript",
}


@router.get("")
@router.get("/")
async def index() -> FileResponse:
    return FileResponse(ROOT / "index.html", media_type="text/html")


@router.get("/static/{name}")
async def asset(name: str) -> FileResponse:
    if name not in ASSETS:
        raise HTTPException(404, "not found")
    return FileResponse(ROOT / name, media_type=ASSETS[name])
