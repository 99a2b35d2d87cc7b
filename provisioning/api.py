"""The enrolment HTTP API: a FastAPI router the cloud app mounts.

    app.include_router(make_router(provisioner))

    POST /api/v1/enrol        EnrolmentRequest (claim + CSR)   -> EnrolmentResponse
    POST /api/v1/enrol/renew  RenewalRequest (signed by key)   -> EnrolmentResponse
    GET  /api/v1/enrol/ca     root CA certificate (PEM)
    GET  /api/v1/enrol/crl    current CRL (PEM)

Refusals answer 403 (claim), 400 (a malformed CSR or terminal id) or 409 (a conflict)
with ``{"detail": {"reason": ...}}``. These routes are unauthenticated by design (the claim
or the key signature is the credential); serve them over HTTPS with a server certificate from
``CertificateAuthority.issue_server`` (``cuntong api`` serves them on its terminals' HTTPS
listener only, when one is configured).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from fastapi import APIRouter, HTTPException, Response

from provisioning.errors import ClaimRefused, EnrolmentRefused
from provisioning.protocol import EnrolmentRequest, EnrolmentResponse, RenewalRequest
from provisioning.service import Provisioner, revoked_serials

PEM = "application/x-pem-file"


#: Refusals that say the request itself is malformed (400); the others are conflicts with
#: the registry's state (409: the id is taken, the device is revoked).
MALFORMED = frozenset({"bad_csr", "bad_terminal_id"})


def _status(err: EnrolmentRefused) -> int:
    return 400 if err.reason in MALFORMED else 409


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def make_router(
    provisioner: Provisioner,
    clock: Callable[[], dt.datetime] = _utcnow,
    prefix: str = "/api/v1/enrol",
) -> APIRouter:
    router = APIRouter(prefix=prefix, tags=["provisioning"])

    @router.post("", response_model=EnrolmentResponse)
    async def enrol(request: EnrolmentRequest) -> EnrolmentResponse:
        try:
            return await provisioner.enrol(request, clock())
        except ClaimRefused as err:
            raise HTTPException(403, {"reason": err.reason, "detail": err.detail}) from err
        except EnrolmentRefused as err:
            raise HTTPException(_status(err), {"reason": err.reason, "detail": err.detail}) from err

    @router.post("/renew", response_model=EnrolmentResponse)
    async def renew(request: RenewalRequest) -> EnrolmentResponse:
        try:
            return await provisioner.renew(request, clock())
        except EnrolmentRefused as err:
            raise HTTPException(409, {"reason": err.reason, "detail": err.detail}) from err

    @router.get("/ca", response_class=Response, responses={200: {"content": {PEM: {}}}})
    async def root_ca() -> Response:
        return Response(provisioner.ca.root_pem, media_type=PEM)

    @router.get("/crl", response_class=Response, responses={200: {"content": {PEM: {}}}})
    async def crl() -> Response:
        now = clock()
        return Response(provisioner.ca.crl(await revoked_serials(now), now), media_type=PEM)

    return router
