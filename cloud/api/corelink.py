"""The API process's link to the bank's core: the adapter built from settings, and the
reconciliation job that settles postings whose answer was lost (at start-up, then every
``core_reconcile_s``; see ``cloud.workflow.corepost``)."""

from __future__ import annotations

import asyncio

from cloud.oversight import Oversight
from cloud.workflow import corepost
from common.errors import ConfigError
from common.periodic import run_every
from common.settings import CloudSettings
from corebank import CoreBankClient


def client(settings: CloudSettings) -> CoreBankClient | None:
    """The core adapter, or None when ``core_url`` is empty."""
    if not settings.core_url:
        return None
    if settings.core_secret_file is None:
        raise ConfigError("core_url is set, so core_secret_file must be too")
    try:
        secret = settings.core_secret_file.read_text().strip()
    except OSError as err:
        raise ConfigError(f"core_secret_file {settings.core_secret_file}: {err.strerror}") from err
    return CoreBankClient(
        settings.core_url, secret, timeout=settings.core_timeout_s, attempts=settings.core_attempts
    )


def reconciler(settings: CloudSettings, ov: Oversight, core: CoreBankClient) -> asyncio.Task[None]:
    """The reconciliation job; its first beat runs at once (start-up)."""

    async def beat() -> None:
        await corepost.reconcile_pending(ov, core, ov.clock())

    loop = run_every(beat, settings.core_reconcile_s, name="core reconcile", backoff_s=1.0)
    return asyncio.create_task(loop, name="core-reconcile")
