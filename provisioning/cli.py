"""``cuntong provision …``: claims, terminals and the CA, for the bank's operators.

    cuntong provision ca init
    cuntong provision claim create --uses 500 --days 30 [--model ZN-E100] [--region 陕西省/西安市]
    cuntong provision claim list | claim revoke CLAIM_ID
    cuntong provision device list [--status active] | device revoke ID | device decommission ID

Works on the cloud's registry (``--db-url``, default ``CUNTONG_CLOUD_DB_URL``) and state
folder (``--state-dir``: CA, keys, broker TLS files). Revoking republishes the CRL and, when
the broker's pid file is there, reloads the broker and disconnects the terminal.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``provision`` on the ``cuntong`` command's sub-parsers."""
    p = subparsers.add_parser("provision", help="device identity: CA, claims, terminals")
    p.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="default: the cloud's state_dir setting ($CUNTONG_CLOUD_STATE_DIR), else .state",
    )
    p.add_argument(
        "--db-url",
        default=None,
        help="default: the cloud's db_url setting ($CUNTONG_CLOUD_DB_URL) when it is set, "
        "else sqlite://<state-dir>/cloud.sqlite3",
    )
    p.add_argument("--broker-host", default="127.0.0.1")
    p.add_argument("--broker-port", type=int, default=8883)
    sub = p.add_subparsers(dest="provision_what", required=True)

    ca = sub.add_parser("ca", help="the certificate authority").add_subparsers(
        dest="action", required=True
    )
    ca.add_parser("init", help="create CA and cloud keys if missing; print fingerprints")

    claim = sub.add_parser("claim", help="enrolment claims").add_subparsers(
        dest="action", required=True
    )
    create = claim.add_parser("create", help="a new claim; prints its token once")
    create.add_argument("--uses", type=int, required=True, help="enrolments allowed")
    create.add_argument("--days", type=float, default=30.0, help="valid for (default 30)")
    create.add_argument("--model", help="only this hardware model")
    create.add_argument("--region", default="", help="only under this prefix, e.g. 陕西省/西安市")
    create.add_argument("--id-prefix", default="", help="only terminal ids starting so")
    create.add_argument("--label", default="")
    claim.add_parser("list", help="all claims")
    revoke_claim = claim.add_parser("revoke", help="stop a claim from enrolling anything more")
    revoke_claim.add_argument("claim_id")

    device = sub.add_parser("device", help="enrolled terminals").add_subparsers(
        dest="action", required=True
    )
    listing = device.add_parser("list", help="terminals with region, model and status")
    listing.add_argument("--status", choices=["active", "revoked", "decommissioned"])
    for action, text in (
        ("revoke", "revoke every certificate (security incident)"),
        ("decommission", "take out of service; the id may enrol again"),
    ):
        device.add_parser(action, help=text).add_argument("terminal_id")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    """Entry point the ``cuntong`` command calls."""
    from common.settings import CloudSettings, load
    from provisioning import cli_actions

    # Defaults come from the cloud's settings (environment or TOML), never read here directly.
    cloud = load(CloudSettings)
    if args.state_dir is None:
        args.state_dir = cloud.state_dir or Path(".state")
    if args.db_url is None and "db_url" in cloud.model_fields_set:
        args.db_url = cloud.db_url
    asyncio.run(cli_actions.dispatch(args, dt.datetime.now(dt.UTC)))
