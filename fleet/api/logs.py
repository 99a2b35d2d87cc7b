"""/api/v1/fleet/log-uploads: terminals upload log bundles; operators download them.

The terminal side (``uploads``, no operator login) is served on the terminals' HTTPS
listener only (a plain-HTTP request is refused ``https_required``) and authenticated by the
terminal's enrolled key (``common.wire.log_upload``): announce the signed manifest with the
certificate, put the missing chunks, complete. An upload is taken only while the cloud has
the ``collect_logs`` command it answers open (``sent``) for that terminal. Every refusal is
a 4xx whose ``detail`` carries the ``reason`` (``bad_signature``, ``upload_closed`` …).

The operator side (``router``) lists uploads and downloads a bundle: ``fleet_operator``
only (logs are redacted, not anonymous), and every download is audited.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from common.http import TerminalIdQuery
from common.wire import log_upload as wire
from common.wire.log_upload import Manifest, UploadRefused
from fleet.api.deps import Logs, Operator, Who, audited, now
from fleet.logstore import COMPLETE, OPEN, certificate_key, public
from fleet.models import FleetCommand
from provisioning.service import revoked_serials

router = APIRouter(prefix="/fleet/log-uploads", tags=["fleet logs"], dependencies=Operator)
uploads = APIRouter(prefix="/fleet/log-uploads", tags=["fleet logs (terminals)"])

#: HTTP status per refusal reason (anything else: 422).
STATUS = {
    "https_required": 403,
    "bad_signature": 401,
    "bad_certificate": 401,
    "wrong_terminal": 403,
    "certificate_expired": 401,
    "certificate_revoked": 403,
    "no_open_command": 409,
    "upload_closed": 409,
    "manifest_changed": 409,
    "no_such_upload": 404,
    "too_large": 413,
}


class Announce(BaseModel):
    manifest: str = Field(max_length=512 * 1024)
    signature: str = Field(max_length=512)
    certificate_pem: str = Field(max_length=16 * 1024)


def _refused(err: UploadRefused) -> HTTPException:
    return HTTPException(STATUS.get(err.reason, 422), {"reason": err.reason, "detail": err.detail})


def _https(request: Request) -> None:
    if request.url.scheme != "https":
        raise _refused(UploadRefused("https_required", "use the terminals' HTTPS listener"))


async def _open_command(upload_id: str, terminal_id: str) -> None:
    command = await FleetCommand.get_or_none(id=upload_id)
    if (
        command is None
        or command.name != "collect_logs"
        or command.terminal_id != terminal_id
        or command.state != "sent"
        or not command.args.get("upload")
    ):
        raise UploadRefused("no_open_command", f"no open collect_logs upload {upload_id}")


@uploads.post("/{upload_id}")
async def announce(upload_id: str, body: Announce, request: Request, store: Logs) -> dict[str, Any]:
    """The signed manifest and the terminal's certificate; answers the chunks held."""
    _https(request)
    try:
        manifest = Manifest.parse(body.manifest.encode())
        if manifest.upload_id != upload_id:
            raise UploadRefused("bad_manifest", "the manifest names another upload")
        store.folder(upload_id)
        at = now()
        revoked = {serial for serial, _ in await revoked_serials(at)}
        key = certificate_key(
            store.issuing, body.certificate_pem, manifest.terminal_id, at, revoked
        )
        wire.verify(key, wire.manifest_message(manifest), body.signature)
        record = store.record(upload_id)
        if record is None or record["state"] == OPEN:
            await _open_command(upload_id, manifest.terminal_id)
        have = store.open(manifest, body.certificate_pem, at)
    except UploadRefused as err:
        raise _refused(err) from err
    return {"upload_id": upload_id, "have": have, "chunks": len(manifest.chunks)}


@uploads.put("/{upload_id}/chunks/{index}")
async def put_chunk(upload_id: str, index: int, request: Request, store: Logs) -> dict[str, Any]:
    """One chunk, its signature in ``X-Cuntong-Signature``: checked against the terminal's
    key first (over the bytes received), then against the manifest."""
    _https(request)
    try:
        record, manifest = store.open_record(upload_id)
        limit = manifest.chunk_size
        data = bytearray()
        async for part in request.stream():
            data += part
            if len(data) > limit:
                raise UploadRefused("too_large", f"a chunk is at most {limit} bytes")
        digest = wire.sha256(bytes(data))
        key = certificate_key(
            store.issuing,
            record["certificate_pem"],
            manifest.terminal_id,
            now(),
            {serial for serial, _ in await revoked_serials(now())},
        )
        signature = request.headers.get(wire.SIGNATURE_HEADER, "")
        wire.verify(
            key, wire.chunk_message(upload_id, manifest.terminal_id, index, digest), signature
        )
        wire.check_chunk(manifest, index, bytes(data))
        store.put_chunk(manifest, digest, bytes(data))
    except UploadRefused as err:
        raise _refused(err) from err
    return {"index": index, "sha256": digest}


@uploads.post("/{upload_id}/complete")
async def complete(upload_id: str, request: Request, store: Logs) -> dict[str, Any]:
    """Reassemble, check the whole digest, store sealed. Only the chunks' signatures
    authenticate: completing is idempotent and changes nothing a stranger could choose."""
    _https(request)
    try:
        record = store.record(upload_id)
        if record is not None and record["state"] == COMPLETE:
            return {"stored": True, **public(record)}
        stored = store.complete(upload_id, now())
    except UploadRefused as err:
        raise _refused(err) from err
    return {"stored": True, **stored}


@router.get("")
async def list_uploads(store: Logs, terminal_id: TerminalIdQuery = None) -> list[dict[str, Any]]:
    return store.list(terminal_id)


@router.get("/{upload_id}/bundle")
async def download(upload_id: str, store: Logs, who: Who) -> Response:
    """The stored bundle (a gzip'd tar of redacted log files); audited."""
    try:
        data = store.bundle(upload_id)
    except UploadRefused as err:
        raise _refused(err) from err
    record = store.record(upload_id) or {}
    await audited(who, "fleet_logs_download", str(record.get("terminal_id")), upload_id=upload_id)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    name = f"logs-{record.get('terminal_id')}-{upload_id}-{stamp}.tgz"
    return Response(
        data,
        media_type="application/gzip",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
