"""``cuntong accounts create|list``: manage people's accounts from the shell.

The first admin has to come from somewhere: ``cuntong accounts create root --role admin``
(password from ``$CUNTONG_ACCOUNT_PASSWORD`` or prompted). A teller with skills:
``cuntong accounts create wang --role teller --skill '*=3' --skill card_loss=5
--language cmn --language zh-shaanxi``. Wire in with
``from cloud.cli import add_parser``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import getpass
import os

from cloud.auth.roles import Role
from common.errors import ConfigError
from common.settings import CloudSettings, load


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``accounts`` on the ``cuntong`` command's sub-parsers."""
    p = subparsers.add_parser("accounts", help="people's accounts and roles")
    p.add_argument(
        "--db-url",
        default=None,
        help="default: the cloud settings' db_url ($CUNTONG_CLOUD_DB_URL, the TOML file, "
        "else sqlite://cuntong.sqlite3)",
    )
    sub = p.add_subparsers(dest="accounts_action", required=True)
    create = sub.add_parser("create", help="a new account")
    create.add_argument("id", help="login name (a teller's id for tellers)")
    create.add_argument("--role", action="append", required=True, choices=[r.value for r in Role])
    create.add_argument("--name", default="", help="display name")
    create.add_argument(
        "--skill",
        action="append",
        default=[],
        metavar="CODE=LEVEL",
        help="a teller's business (catalogue code) and proficiency 1-5; '*=3' for every "
        "business (repeat; later entries win)",
    )
    create.add_argument(
        "--language", action="append", default=[], help="a teller's language code (repeat)"
    )
    create.set_defaults(func=lambda args: asyncio.run(_create(args)))
    listing = sub.add_parser("list", help="accounts and their roles")
    listing.set_defaults(func=lambda args: asyncio.run(_list(args)))


def _db_url(args: argparse.Namespace) -> str:
    """``--db-url``, else what the cloud itself would use (read when a command runs, not when
    the parser is built: the edge agent builds this parser too)."""
    return str(args.db_url or load(CloudSettings).db_url)


# The database layer is imported inside the commands: building the `cuntong` parser must
# stay cheap, since every process (the edge agent too) builds it.


async def _create(args: argparse.Namespace) -> None:
    from cloud.auth import service
    from cloud.db import close_db, open_db
    from cloud.sessions import profiles

    teller = Role.TELLER.value in args.role
    if (args.skill or args.language) and not teller:
        raise ConfigError("--skill and --language are for accounts with --role teller")
    try:
        businesses = profiles.parse_skill_args(args.skill)
        if teller and (businesses or args.language):
            profiles.check(businesses, args.language)
    except ValueError as err:
        raise ConfigError(str(err)) from err
    password = os.environ.get("CUNTONG_ACCOUNT_PASSWORD") or getpass.getpass("password: ")
    now = dt.datetime.now(dt.UTC)
    await open_db(_db_url(args))
    try:
        await service.create_account(args.id, password, args.role, now, args.name)
        if teller and (businesses or args.language):
            await profiles.set_profile(args.id, businesses, args.language, now)
    except ValueError as err:
        raise ConfigError(str(err)) from err
    finally:
        await close_db()
    skills = f"; skills {len(businesses)} businesses, {', '.join(args.language)}" if teller else ""
    print(f"created {args.id} ({', '.join(sorted(args.role))}){skills}")


async def _list(args: argparse.Namespace) -> None:
    from cloud.auth.models import Account
    from cloud.db import close_db, open_db

    await open_db(_db_url(args))
    try:
        for account in await Account.all().order_by("id"):
            flag = " (disabled)" if account.disabled else ""
            print(f"{account.id}\t{','.join(account.roles)}\t{account.display_name}{flag}")
    finally:
        await close_db()
