"""No route of the whole cloud app ships without a guard, and the fleet API checks roles."""

from __future__ import annotations

from pathlib import Path

import httpx

from cloud.auth.deps import unguarded_routes
from common.settings import CloudSettings
from cuntong.app import create_app
from tests.helpers import CloudProcess, create_account

#: Open on purpose, each for a stated reason.
PUBLIC = frozenset(
    {
        "GET /healthz",  # liveness probe for load balancers; no personal data
        # Whether this replica holds the desk's lease: HAProxy's check for the desk's
        # paths (cuntong.deploy.haproxy_config); a yes or no, nothing else.
        "GET /healthz/leader",
        "POST /api/v1/auth/login",  # how a login starts (rate-limited)
        "GET /api/v1/ops/screen",  # a static page; the data it polls is guarded
        # Terminals enrol before they have any identity: the claim token or the current
        # key's signature is the credential (provisioning.api).
        "POST /api/v1/enrol",
        "POST /api/v1/enrol/renew",
        "GET /api/v1/enrol/ca",
        "GET /api/v1/enrol/crl",
        # Where the brokers are: a terminal that reaches no broker asks (over TLS checked
        # against its claim's root); broker addresses are what enrolment hands out anyway.
        "GET /api/v1/enrol/brokers",
        # The fleet dashboard's page and its static files; every call it makes is guarded.
        "GET /fleet",
        "GET /fleet/",
        "GET /fleet/static/{name}",
        # The teller app's page and its static files; every call it makes is guarded.
        "GET /teller",
        "GET /teller/",
        "GET /teller/watch",
        "GET /teller/static/{name}",
        # The modules those pages share (common.web: DOM helpers, i18n, the sign-in form).
        "GET /ui/{name}",
        # Participants' Janus API through the cloud's gate: the grant's Janus token is the
        # credential, checked by Janus itself (cloud.api.routes.janus_gate).
        "GET /media/janus/{node}",
        "POST /media/janus/{node}",
        "GET /media/janus/{node}/{path:path}",
        "POST /media/janus/{node}/{path:path}",
        # OTA payloads: terminals fetch them with Range requests and verify the signed
        # manifest before installing; they hold no personal data.
        "GET /api/v1/fleet/packages/{component}/{version}/payload",
        # A terminal's log bundle upload (fleet.api.logs): the credential is the terminal's
        # enrolled key, which signs the announce and every chunk, checked against our CA,
        # the terminal and the open collect_logs command (the HTTPS listener cannot see a
        # client certificate). Downloading is operator-only.
        "POST /api/v1/fleet/log-uploads/{upload_id}",
        "PUT /api/v1/fleet/log-uploads/{upload_id}/chunks/{index}",
        "POST /api/v1/fleet/log-uploads/{upload_id}/complete",
        # A delta of such a payload: signed like it, each file checked against its hash.
        "GET /api/v1/fleet/packages/{component}/{version}/deltas/{base}/payload",
    }
)

#: The factory's machine credential (a bearer token), not a person: see cloud.security.
FACTORY_TOKEN_ROUTES = frozenset(
    {
        "GET /api/v1/provisioning/claims",
        "POST /api/v1/provisioning/claims",
        "POST /api/v1/provisioning/claims/{claim_id}/revoke",
        "GET /api/v1/provisioning/terminals",
        "POST /api/v1/provisioning/terminals/{terminal_id}/{action}",
    }
)


def test_every_route_of_the_secured_app_is_guarded(tmp_path: Path) -> None:
    settings = CloudSettings(
        state_dir=tmp_path / "cloud", admin_token="x" * 32, db_url="sqlite://:memory:"
    )
    app = create_app(settings)
    missing = unguarded_routes([app.router], PUBLIC | FACTORY_TOKEN_ROUTES)
    # FastAPI's own documentation routes are plain Starlette routes, not APIRoutes.
    assert missing == []
    paths = set(app.openapi()["paths"])
    assert {"/api/v1/terminals", "/api/v1/provisioning/claims", "/api/v1/enrol"} <= paths
    assert len(paths) >= 30  # the check above saw the whole app, not an empty router


async def test_terminals_api_needs_a_fleet_role(tmp_path: Path, cloud: CloudProcess) -> None:
    async with httpx.AsyncClient(base_url=cloud.url, timeout=10) as anonymous:
        assert (await anonymous.get("/api/v1/terminals")).status_code == 401
        db_url = f"sqlite://{tmp_path / 'cloud.sqlite3'}"
        create_account(db_url, "teller-7", "a-teller-password-123", "teller")
        login = await anonymous.post(
            "/api/v1/auth/login", json={"username": "teller-7", "password": "a-teller-password-123"}
        )
        token = login.json()["token"]
        as_teller = await anonymous.get(
            "/api/v1/terminals", headers={"Authorization": f"Bearer {token}"}
        )
        assert as_teller.status_code == 403
    async with cloud.client() as operator:
        assert (await operator.get("/api/v1/terminals")).status_code == 200
