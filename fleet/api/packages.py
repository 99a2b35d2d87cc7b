"""/api/v1/fleet/packages: publish OTA packages; terminals download them (HTTP ranges)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse

from common.errors import PackageExists
from fleet.api import deps
from fleet.api.deps import Operator, Readers, Store, Who, audited
from fleet.packages import PackageStore

router = APIRouter(prefix="/fleet/packages", tags=["fleet packages"], dependencies=Readers)
#: Terminals download without an operator login: what they install is signed, not secret.
downloads = APIRouter(prefix="/fleet/packages", tags=["fleet packages"])

MAX_PACKAGE_BYTES = 512 * 1024 * 1024


def _names(store: PackageStore, component: str, version: str) -> None:
    try:
        store.folder(component, version)
    except ValueError as err:
        raise HTTPException(422, str(err)) from err


@router.get("")
async def list_packages(store: Store) -> list[dict[str, Any]]:
    return store.list()


@router.put("/{component}/{version}", status_code=201, dependencies=Operator)
async def publish(
    component: str, version: str, request: Request, store: Store, who: Who
) -> dict[str, Any]:
    """The request body is the artefact itself (agent bundle, adapter, ONNX model)."""
    _names(store, component, version)
    payload = await request.body()
    if len(payload) > MAX_PACKAGE_BYTES:
        raise HTTPException(413, "package too large")
    try:
        manifest = store.publish(component, version, payload)
    except PackageExists as err:
        raise HTTPException(409, str(err)) from err
    await audited(who, "fleet_package_publish", f"{component} {version}", sha256=manifest.sha256)
    return {
        "component": component,
        "version": version,
        "size": manifest.size,
        "sha256": manifest.sha256,
    }


@router.post("/{component}/{version}/deltas", status_code=201, dependencies=Operator)
async def publish_delta(
    component: str, version: str, body: dict[str, Any], store: Store, who: Who
) -> dict[str, Any]:
    """A patch release as a delta against a published base: ``{"from": "<version>"}``."""
    base = body.get("from")
    if not isinstance(base, str):
        raise HTTPException(422, "from: the base version (a string) is required")
    _names(store, component, version)
    _names(store, component, base)
    try:
        made = store.publish_delta(component, version, base)
    except LookupError as err:
        raise HTTPException(404, str(err)) from err
    except PackageExists as err:
        raise HTTPException(409, str(err)) from err
    except ValueError as err:  # a base or target that is no wheel
        raise HTTPException(422, f"cannot build a delta: {err}") from err
    await audited(who, "fleet_package_delta", f"{component} {version} from {base}")
    return made


@router.get("/{component}/{version}/install-args", dependencies=Operator)
async def install_args(
    component: str, version: str, request: Request, store: Store
) -> dict[str, Any]:
    _names(store, component, version)
    try:
        return store.install_args(component, version, str(request.base_url))
    except LookupError as err:
        raise HTTPException(404, str(err)) from err


@downloads.get("/{component}/{version}/payload")
async def payload(component: str, version: str, store: Store) -> FileResponse:
    """Range requests are honoured (Starlette), so an interrupted download resumes."""
    _names(store, component, version)
    path = store.folder(component, version) / "payload"
    if not path.exists():
        raise HTTPException(404, "package not found")
    return FileResponse(path, media_type="application/octet-stream")


@downloads.get("/{component}/{version}/deltas/{base}/payload")
async def delta_payload(component: str, version: str, base: str, store: Store) -> FileResponse:
    _names(store, component, version)
    _names(store, component, base)
    path = store.delta_folder(component, version, base) / "payload"
    if not path.exists():
        raise HTTPException(404, "delta not found")
    return FileResponse(path, media_type="application/octet-stream")


def complete_args(
    store: PackageStore | None, base_url: str, name: str, args: dict[str, Any]
) -> dict[str, Any]:
    """``ota_install`` named by component and version gets its URL, manifest and signature
    (``base_url``: where terminals reach this API)."""
    if name != "ota_install" or "manifest" in args:
        return args
    if not {"component", "version"} <= args.keys():
        raise HTTPException(422, "ota_install needs component and version")
    store = deps.packages(store)  # 503 without the secured mode
    _names(store, str(args["component"]), str(args["version"]))
    try:
        return {
            **args,
            **store.install_args(args["component"], args["version"], base_url),
        }
    except LookupError as err:
        raise HTTPException(404, str(err)) from err
