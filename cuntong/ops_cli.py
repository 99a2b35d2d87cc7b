"""Operations commands: ``cuntong db``, ``cuntong backup`` and ``cuntong deploy``.

    cuntong db upgrade | status                    schema migrations (see cloud.db)
    cuntong backup create --out FILE               see cuntong.backup
    cuntong backup restore FILE --state-dir DIR    into an empty deployment
    cuntong deploy render --inventory FILE --out DIR   see cuntong.deploy

Defaults come from the cloud settings (``CUNTONG_CLOUD_*``, the TOML file); the backup
passphrase from ``--passphrase-file`` or ``$CUNTONG_BACKUP_PASSPHRASE``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
from pathlib import Path

from common.errors import ConfigError


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    db = subparsers.add_parser("db", help="database schema migrations")
    db.add_argument("--db-url", help="default: the cloud settings' db_url")
    db_sub = db.add_subparsers(dest="db_action", required=True)
    db_sub.add_parser("upgrade", help="apply the migrations the database lacks").set_defaults(
        func=_cmd_db_upgrade
    )
    db_sub.add_parser("status", help="migrations applied and pending").set_defaults(
        func=_cmd_db_status
    )

    backup = subparsers.add_parser("backup", help="back up or restore a deployment")
    b_sub = backup.add_subparsers(dest="backup_action", required=True)
    make = b_sub.add_parser("create", help="database, telemetry, keys, evidence, recordings")
    make.add_argument("--out", type=Path, required=True, help="archive to write (.tar.gz)")
    make.add_argument("--state-dir", type=Path, help="default: the cloud settings' state_dir")
    make.add_argument("--db-url", help="default: the cloud settings' db_url")
    make.add_argument("--tsdb-url", default="", help="VictoriaMetrics URL (empty: skip)")
    make.add_argument("--tsdb-data", type=Path, help="VictoriaMetrics -storageDataPath")
    make.add_argument("--recordings", type=Path, help="default: the cloud settings' archive_dir")
    make.add_argument("--passphrase-file", type=Path)
    make.set_defaults(func=_cmd_backup_create)
    back = b_sub.add_parser("restore", help="into an empty deployment")
    back.add_argument("archive", type=Path)
    back.add_argument("--state-dir", type=Path, required=True, help="empty or absent")
    back.add_argument("--db-url", required=True, help="an empty database (or absent SQLite file)")
    back.add_argument("--tsdb-data", type=Path, help="empty VictoriaMetrics data folder")
    back.add_argument("--recordings", type=Path, help="default <state-dir>/recordings")
    back.add_argument("--passphrase-file", type=Path)
    back.set_defaults(func=_cmd_backup_restore)

    deploy = subparsers.add_parser("deploy", help="render a deployment for systemd hosts")
    d_sub = deploy.add_subparsers(dest="deploy_action", required=True)
    render = d_sub.add_parser("render", help="units and configuration from an inventory")
    render.add_argument("--inventory", type=Path, required=True, help="TOML inventory")
    render.add_argument("--out", type=Path, required=True, help="folder to write (per host)")
    render.set_defaults(func=_cmd_deploy_render)


def _cloud_settings():  # type: ignore[no-untyped-def]
    from common.settings import CloudSettings, load

    return load(CloudSettings)


def _db_url(args: argparse.Namespace) -> str:
    return str(args.db_url or _cloud_settings().db_url)


def _cmd_db_upgrade(args: argparse.Namespace) -> None:
    from cloud.db import close_db, open_db

    async def run() -> list[str]:
        try:
            return await open_db(_db_url(args))
        finally:
            await close_db()

    applied = asyncio.run(run())
    print("\n".join(f"applied {name}" for name in applied) or "up to date")


def _cmd_db_status(args: argparse.Namespace) -> None:
    from cloud.db import MIGRATIONS, applied_migrations, close_db, open_db

    async def run() -> list[str]:
        await open_db(_db_url(args), upgrade=False)
        try:
            return await applied_migrations()
        except Exception:  # no aerich table yet: nothing applied
            return []
        finally:
            await close_db()

    done = set(asyncio.run(run()))
    for path in sorted(MIGRATIONS.glob("models/*.py"), key=lambda p: int(p.name.split("_")[0])):
        print(f"{'applied' if path.name in done else 'PENDING'}\t{path.name}")


def _wrapper(passphrase_file: Path | None):  # type: ignore[no-untyped-def]
    from cuntong.backup import PassphraseWrapper

    if passphrase_file is not None:
        secret = passphrase_file.read_bytes().strip()
    elif os.environ.get("CUNTONG_BACKUP_PASSPHRASE"):
        secret = os.environ["CUNTONG_BACKUP_PASSPHRASE"].encode()
    else:
        raise ConfigError(
            "a backup passphrase is needed: --passphrase-file or $CUNTONG_BACKUP_PASSPHRASE"
        )
    return PassphraseWrapper(secret)


def _cmd_backup_create(args: argparse.Namespace) -> None:
    from cuntong.backup import Sources, create

    settings = _cloud_settings()
    state_dir = args.state_dir or settings.state_dir
    if state_dir is None:
        raise ConfigError("--state-dir (or the cloud settings' state_dir) is needed")
    wrapper = _wrapper(args.passphrase_file)
    sources = Sources(
        state_dir=state_dir,
        db_url=str(args.db_url or settings.db_url),
        tsdb_url=args.tsdb_url,
        tsdb_data=args.tsdb_data,
        recordings=args.recordings or settings.archive_dir,
    )
    manifest = create(sources, args.out, wrapper, dt.datetime.now(dt.UTC))
    secret = sum(1 for m in manifest["members"] if m["encrypted"])
    print(f"wrote {args.out}: {len(manifest['members'])} files, {secret} encrypted")


def _cmd_backup_restore(args: argparse.Namespace) -> None:
    from cuntong.backup import Targets, restore

    counts = restore(
        args.archive,
        Targets(args.state_dir, args.db_url, args.tsdb_data, args.recordings),
        _wrapper(args.passphrase_file),
    )
    print("restored " + ", ".join(f"{part}: {n}" for part, n in counts.items()))


def _cmd_deploy_render(args: argparse.Namespace) -> None:
    from cuntong.deploy import enrol_url, load_inventory, render_inventory

    written = render_inventory(args.inventory, args.out)
    print(f"wrote {len(written)} files under {args.out}")
    print(f"terminals' claims: enrol_url = {enrol_url(load_inventory(args.inventory)[1])}")
