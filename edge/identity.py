"""The terminal's identity on the wire: enrolment at first boot, mTLS, command keys, MACs.

A thin shell over ``provisioning.device`` (which does the work and is tested there). With a
factory claim (``claim.json``) or an identity already installed, the agent runs secured:
mTLS to the brokers the cloud handed over at enrolment (tried in order, the list refreshed
from the enrolment API when none answers), every command checked
against the cloud's signing key and a replay cache kept across restarts, every event
tagged with a MAC. With neither, it runs in the anonymous development mode the spine's tests use.
"""

from __future__ import annotations

import datetime as dt
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from common import suite as suite_lib
from common.wire import commands as signed
from edge.replay import open_replay_cache
from provisioning.device import (
    Identity,
    enrolment_client,
    ensure_identity,
    fetch_brokers,
    read_claim,
)
from provisioning.keys import load_command_public_key
from provisioning.protocol import BrokerAddress, FactoryClaim


@dataclass
class SecureLink:
    identity: Identity
    claim: FactoryClaim | None
    tls: ssl.SSLContext
    #: The brokers to try in order (failover); refreshed from the cloud when none answers.
    brokers: list[BrokerAddress]
    command_key: signed.VerifyKey
    suite: suite_lib.Suite
    mac_key: bytes
    replay: signed.ReplayCache = field(default_factory=signed.ReplayCache)

    @classmethod
    def load(cls, identity: Identity, claim: FactoryClaim | None, now: dt.datetime) -> SecureLink:
        """The link for ``identity``; its replay cache is reloaded from the identity folder
        (``edge.replay``), so commands run before a restart stay refused after it."""
        info = identity.info()
        suite = suite_lib.Suite(info["suite"])
        return cls(
            identity=identity,
            claim=claim,
            tls=identity.ssl_context(),
            brokers=identity.brokers(),
            command_key=load_command_public_key(info["command_key_pem"].encode()),
            suite=suite,
            mac_key=bytes.fromhex(info["event_mac_key"]),
            replay=open_replay_cache(identity.directory, now),
        )

    @property
    def broker_host(self) -> str:
        return self.brokers[0].host

    @property
    def broker_port(self) -> int:
        return self.brokers[0].port

    async def refresh_brokers(self) -> list[BrokerAddress] | None:
        """Ask the enrolment API for the current broker list and store it; None without a
        claim (no enrolment URL to ask) or when the list did not change."""
        if self.claim is None:
            return None
        async with enrolment_client(self.claim) as http:
            brokers = await fetch_brokers(http)
        if brokers == self.brokers:
            return None
        self.identity.update_brokers(brokers)
        self.brokers = brokers
        return brokers

    def event_tag(self, payload: bytes) -> str:
        return signed.event_tag(self.suite, self.mac_key, payload)

    def verify(self, raw: bytes, terminal_id: str, name: str, now: dt.datetime) -> signed.Command:
        """The command if authentic, current, new and for us; ``CommandRefused`` otherwise."""
        return signed.verify_command(
            self.command_key, raw, terminal_id, now, self.replay, topic_name=name
        )

    async def renew_if_due(self, now: dt.datetime) -> bool:
        """Rotate the certificate when due; the next reconnect uses the new one."""
        if self.claim is None:
            return False
        async with enrolment_client(self.claim) as http:
            renewed = await ensure_identity(http, self.identity, self.claim, now)
        if renewed:
            self.tls = self.identity.ssl_context()
            self.brokers = self.identity.brokers()  # the renewal answer's list
        return renewed


async def establish(
    state_dir: Path, claim_path: Path | None, now: dt.datetime
) -> SecureLink | None:
    """Enrol on first boot (or renew when due) and load the identity; None in dev mode."""
    identity = Identity(state_dir / "identity")
    path = claim_path or state_dir / "claim.json"
    claim = read_claim(path) if path.exists() else None
    if claim is None and not identity.exists():
        return None
    if claim is not None:
        async with enrolment_client(claim) as http:
            await ensure_identity(http, identity, claim, now)
    return SecureLink.load(identity, claim, now)
