"""The oversight services (auth, evidence, quality, ops), built once per API process.

``Oversight.build(settings)`` is what ``cloud.api.app.create_app`` uses unless it is given
one: tests pass their own (fixed clock, cheap password hashing) as
``create_app(settings, oversight=...)``. Routes receive it as the ``OversightDep``
dependency (``cloud.api.deps``); nothing changes it after it is built.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from argon2 import PasswordHasher
from cryptography import x509

from cloud.auth import passwords
from cloud.auth.cache import TokenCache
from cloud.auth.deps import Principal
from cloud.auth.ratelimit import LoginThrottle, RateLimiter
from cloud.catalogue import DEFAULT_PATH, Catalogue, load_catalogue
from cloud.evidence.keys import EvidenceKeys, load_or_create
from cloud.evidence.sealer import Sealer
from cloud.workflow.cardcheck import CardChecks
from cloud.workflow.steps import IdentityCheck
from common import suite as suite_lib
from common.errors import ConfigError
from common.settings import CloudSettings
from provisioning import ca as ca_lib


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Oversight:
    catalogue: Catalogue
    evidence_keys: EvidenceKeys
    evidence_dir: Path
    suite: suite_lib.Suite
    clock: Callable[[], dt.datetime] = _utcnow
    hasher: PasswordHasher = passwords.HASHER
    session_ttl: dt.timedelta = dt.timedelta(hours=8)
    #: Login attempts per client address (generous: a branch's tellers share one NAT
    #: address and log in together at shift start), and wrong passwords per account and
    #: address with a per-account delay instead of a lock (see cloud.auth.ratelimit).
    login_throttle: LoginThrottle = field(default_factory=LoginThrottle)
    login_per_address: RateLimiter = field(default_factory=lambda: RateLimiter(120, 60.0))
    #: Who each bearer token stands for, for a couple of seconds (see cloud.auth.cache).
    principals: TokenCache[Principal] = field(default_factory=TokenCache)
    #: Terminal enrolment attempts per client address
    #: (see ``cloud.api.routes.auth.enrol_rate_limit``).
    enrol_per_address: RateLimiter = field(default_factory=lambda: RateLimiter(20, 60.0))
    #: Seals evidence packages in a worker process (see cloud.evidence.sealer).
    sealer: Sealer = field(default_factory=Sealer)
    #: The CA certificates that issue terminal certificates: a device step's signed result
    #: is trusted only under one of them (none in the anonymous development mode).
    device_issuers: tuple[x509.Certificate, ...] = ()
    #: The bank's gateway to the citizen identity service (None: not configured, and the
    #: online check waits for a supervisor's override).
    identity: IdentityCheck | None = None
    #: The HSM and core calls that decide the ``card_read`` and ``pin_entry`` steps (None:
    #: not configured, and those steps wait for a supervisor's override).
    cards: CardChecks | None = None

    @property
    def qa_salt(self) -> bytes:
        """Secret salt of the quality-inspection sampling draw (stable across restarts)."""
        return suite_lib.derive_key(self.suite, self.evidence_keys.data_master, "qa-sample-salt")

    @classmethod
    def build(cls, settings: CloudSettings) -> Oversight:
        """Keys and packages under ``state_dir``; without one (the anonymous development
        mode) under the system temp directory, so they at least survive a restart."""
        catalogue = load_catalogue(settings.catalogue or DEFAULT_PATH)
        base = settings.state_dir or Path(tempfile.gettempdir()) / "cuntong-dev-oversight"
        keys = load_or_create(base)
        issuers: tuple[x509.Certificate, ...] = ()
        if settings.state_dir is not None:
            authority = ca_lib.load_or_create(settings.state_dir, _utcnow())
            issuers = (authority.issuing,)
        return cls(
            catalogue,
            keys,
            base / "evidence",
            suite_lib.Suite(settings.crypto_suite),
            enrol_per_address=RateLimiter(settings.enrol_per_minute, 60.0),
            device_issuers=issuers,
            identity=_identity_client(settings),
            cards=_card_checks(settings),
        )


def _identity_client(settings: CloudSettings) -> IdentityCheck | None:
    if not settings.idcheck_url:
        return None
    from idcheck.client import IdentityClient

    return IdentityClient(
        settings.idcheck_url, settings.idcheck_key.encode(), settings.idcheck_key_id
    )


def _secret(path: Path | None, what: str) -> str:
    if path is None:
        raise ConfigError(f"{what}_url is set, so {what}_secret_file must be too")
    try:
        return path.read_text().strip()
    except OSError as err:
        raise ConfigError(f"{what}_secret_file {path}: {err.strerror}") from err


def _card_checks(settings: CloudSettings) -> CardChecks | None:
    """The card and PIN steps' HSM and core clients, when both are configured."""
    if not settings.hsm_url or not settings.core_url:
        return None
    from corebank import CoreBankClient
    from hsm import HsmClient

    hsm = HsmClient(settings.hsm_url, _secret(settings.hsm_secret_file, "hsm"))
    core = CoreBankClient(
        settings.core_url,
        _secret(settings.core_secret_file, "core"),
        timeout=settings.core_timeout_s,
        attempts=1,  # a lookup or a PIN count is asked again by the teller, not retried
    )
    return CardChecks(hsm, core, settings.hsm_imk, settings.hsm_pvk)
