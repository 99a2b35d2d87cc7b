"""What each ``cuntong provision`` sub-command does (the parser is in ``provisioning.cli``)."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from tortoise import Tortoise

from provisioning import ca as ca_lib
from provisioning import keys as keys_lib
from provisioning.errors import EnrolmentRefused
from provisioning.models import ProvClaim, ProvTerminal
from provisioning.service import Provisioner
from provisioning.wiring import cloud_provisioner


def tortoise_config(db_url: str) -> dict[str, Any]:
    """A Tortoise config holding only the provisioning models (tables are ``prov_*``)."""
    if db_url.startswith("postgres://"):
        db_url = "asyncpg://" + db_url.removeprefix("postgres://")
    return {
        "connections": {"default": db_url},
        # The same app label as the cloud's config (cloud.db): a model class belongs to one
        # app per process, and the CLI and the tests open both.
        "apps": {"models": {"models": ["provisioning.models"]}},
        "use_tz": True,
        "timezone": "UTC",
    }


async def dispatch(args: argparse.Namespace, now: dt.datetime) -> None:
    state: Path = args.state_dir
    authority = ca_lib.load_or_create(state, now)
    keys = keys_lib.load_or_create(state)
    if args.provision_what == "ca":
        fingerprint = authority.root.fingerprint(hashes.SHA256()).hex(":")
        print(f"root CA      {authority.directory / 'root.pem'}")
        print(f"fingerprint  SHA256 {fingerprint}")
        print("command key  (Ed25519, public)\n" + keys.command_public_pem.decode().strip())
        return
    provisioner = cloud_provisioner(state, args.broker_host, args.broker_port, now)
    db_url = args.db_url or f"sqlite://{state / 'cloud.sqlite3'}"
    await Tortoise.init(config=tortoise_config(db_url))
    await Tortoise.generate_schemas(safe=True)
    try:
        await _ACTIONS[(args.provision_what, args.action)](args, provisioner, now)
    finally:
        await Tortoise.close_connections()


async def _claim_create(args: argparse.Namespace, prov: Provisioner, now: dt.datetime) -> None:
    claim, token = await prov.create_claim(
        now,
        max_uses=args.uses,
        valid_for=dt.timedelta(days=args.days),
        hardware_model=args.model,
        region_scope=[part for part in args.region.split("/") if part],
        id_prefix=args.id_prefix,
        label=args.label,
    )
    print(f"claim {claim.id}: {claim.max_uses} uses until {claim.expires_at.isoformat()}")
    print("token (shown once; write it onto the terminals of this batch):")
    print(token)


async def _claim_list(args: argparse.Namespace, prov: Provisioner, now: dt.datetime) -> None:
    print(f"{'claim':<18}{'uses':>11}  {'expires':<26}{'state':<9}{'model':<10}region / label")
    for c in await ProvClaim.all().order_by("created_at"):
        state = "revoked" if c.revoked_at else "expired" if c.expires_at <= now else "open"
        uses = f"{c.uses}/{c.max_uses}"
        print(
            f"{c.id:<18}{uses:>11}  {c.expires_at.isoformat():<26}{state:<9}"
            f"{c.hardware_model or '*':<10}{c.region_scope or '*'} {c.label}"
        )


async def _claim_revoke(args: argparse.Namespace, prov: Provisioner, now: dt.datetime) -> None:
    if not await prov.revoke_claim(args.claim_id, now):
        raise EnrolmentRefused("unknown_claim", f"no open claim {args.claim_id}")
    print(f"claim {args.claim_id} revoked")


async def _device_list(args: argparse.Namespace, prov: Provisioner, now: dt.datetime) -> None:
    query = ProvTerminal.all().order_by("id")
    if args.status:
        query = query.filter(status=args.status)
    for t in await query:
        region = "/".join((t.province, t.city, t.county, t.village))
        print(f"{t.id:<20}{t.status:<16}{t.hardware_model:<12}{region}")


async def _device_revoke(args: argparse.Namespace, prov: Provisioner, now: dt.datetime) -> None:
    count = await prov.revoke_terminal(args.terminal_id, now)
    print(f"{args.terminal_id}: revoked {count} certificate(s); CRL republished")


async def _device_decommission(
    args: argparse.Namespace, prov: Provisioner, now: dt.datetime
) -> None:
    count = await prov.decommission(args.terminal_id, now)
    print(f"{args.terminal_id}: decommissioned, {count} certificate(s) revoked")


_ACTIONS = {
    ("claim", "create"): _claim_create,
    ("claim", "list"): _claim_list,
    ("claim", "revoke"): _claim_revoke,
    ("device", "list"): _device_list,
    ("device", "revoke"): _device_revoke,
    ("device", "decommission"): _device_decommission,
}
