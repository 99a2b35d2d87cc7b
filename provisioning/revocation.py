"""Make a revocation bite: delete the terminal's broker client (dynamic security, no reload),
end its session, republish the CRL, reload mosquitto, cut off a connection made meanwhile.

Mosquitto reads its ``crlfile`` only at start and on SIGHUP, and never re-checks clients
already connected. ``RevocationPublisher`` therefore, per revoked terminal

1. deletes its dynamic-security client and role (``admin``): the broker disconnects it at
   once, and a reconnect may neither publish nor subscribe;
2. ends its session *before* the reload (``kick``): it connects with a two-minute
   certificate for that terminal id (the broker sets the client id to the CN, so this is the
   terminal's client id), with clean start and no session expiry, and leaves. The broker
   drops the old session (online or offline) and its queued commands;
3. writes a fresh CRL (all revoked, unexpired serials, plus a throw-away *canary* serial),
   sends SIGHUP through the broker's pid file and waits until a TLS handshake with the
   canary certificate is refused, so it knows the broker now enforces the new CRL;
4. disconnects a connection the terminal made between 2 and 3 (``BrokerAdmin.cut_off``:
   the broker kicks live connections only); its reconnect then fails the CRL check.

Why this order: on Debian 12's Mosquitto 2.0.11 a SIGHUP lists every *offline* session
with a session expiry a second time in the broker's expiry list; taking such a session over
afterwards (a kick, or the terminal coming back) frees it while the list still points to it,
and the broker later crashes (SIGTERM aborts in ``will_delay__remove``, or it segfaults).
Ending the revoked terminal's session before the reload, and cutting it off afterwards
without a takeover, keeps the revocation itself away from that trigger; see
docs/provisioning.md, "Broker reloads (issue 14)", for the experiment and what remains.

Call ``publish(now)`` on a timer too (``keep_crl_fresh``): OpenSSL refuses every client once
the CRL passes its next-update time (7 days by default). ``publish`` only rewrites the CRL
and reloads the broker when it must: when the revoked serials differ from the CRL the
broker already has, or when that CRL is past half its validity. An API start therefore
no longer reloads the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import ssl
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import aiomqtt

from common.aio import within
from provisioning import broker as broker_lib
from provisioning import ca as ca_lib
from provisioning.device import client_ssl_context, new_csr
from provisioning.dynsec import BrokerAdmin
from provisioning.files import ensure_private_dir, write_private, write_public
from provisioning.service import revoked_serials

log = logging.getLogger("cuntong.revocation")

KICK_CERT_DAYS = 2 / (24 * 60)  # two minutes


@dataclass
class RevocationPublisher:
    ca: ca_lib.CertificateAuthority
    files: broker_lib.BrokerFiles
    broker_host: str
    broker_port: int
    #: False where the broker is not ours to signal (then an operator reloads it). Also
    #: skipped while the broker's pid file is absent (broker not running here).
    reload_broker: bool = True
    reload_timeout: float = 10.0
    #: The broker's dynamic-security control: a revoked terminal's client and role are
    #: deleted at once, no reload needed (the broker disconnects it and a reconnect may
    #: neither publish nor subscribe). The CRL below stays the second line.
    admin: BrokerAdmin | None = None

    async def __call__(self, terminal_ids: Sequence[str], now: dt.datetime) -> None:
        if self.admin is not None:
            await self.admin.remove_terminals(terminal_ids)
        if not self._ours():
            # Not our broker: it enforces the CRL once its operator reloads it.
            await self.publish(now)
            return
        # No session of a revoked terminal may be offline when the broker reloads (module
        # docstring): end each one now, while a takeover is still safe.
        for terminal_id in terminal_ids:
            await self.kick(terminal_id, now)
        reloaded = await self.publish(now)
        if self.admin is not None:
            await self.admin.cut_off(terminal_ids)
        elif reloaded:
            # Without the plugin only a takeover disconnects; the session it could free was
            # ended by the kick above unless the terminal came back within these moments.
            for terminal_id in terminal_ids:
                await self.kick(terminal_id, now)

    async def publish(self, now: dt.datetime) -> bool:
        """Write the CRL and, if we run the broker, make it enforce the new list. Does
        nothing (returns False) while the CRL on disk still says the same and is fresh."""
        listed = await revoked_serials(now)
        if not broker_lib.crl_outdated(self.files.crlfile, {serial for serial, _ in listed}, now):
            return False
        with tempfile.TemporaryDirectory(prefix="cuntong-canary-") as tmp:
            canary_ctx, canary_serial = self._credentials("crl-canary", now, Path(tmp))
            revoked = [*listed, (canary_serial, now)]
            ensure_private_dir(self.files.directory)
            write_public(self.files.crlfile, self.ca.crl(revoked, now))
            if not self._ours():
                return True
            broker_lib.reload(self.files.pidfile)
            await self._until_refused(canary_ctx)
        return True

    def _ours(self) -> bool:
        return self.reload_broker and self.files.pidfile.exists()

    async def kick(self, terminal_id: str, now: dt.datetime) -> None:
        """End ``terminal_id``'s session, connected or not (takeover with clean start; the
        kick's own session expires as it leaves). Only before a reload: see above."""
        with tempfile.TemporaryDirectory(prefix="cuntong-kick-") as tmp:
            ctx, _ = self._credentials(terminal_id, now, Path(tmp))
            async with aiomqtt.Client(
                self.broker_host,
                self.broker_port,
                tls_context=ctx,
                identifier=terminal_id,
                protocol=aiomqtt.ProtocolVersion.V5,
                clean_start=True,
                timeout=10,
            ):
                pass

    async def kick_service(self, instance: str, now: dt.datetime) -> None:
        """End the session of service ``instance`` (``svc.<instance>``) the same way, with a
        throw-away two-minute certificate (the instance's own files are not touched)."""
        with tempfile.TemporaryDirectory(prefix="cuntong-kick-") as tmp:
            ctx, _ = self._credentials(instance, now, Path(tmp), service=True)
            async with aiomqtt.Client(
                self.broker_host,
                self.broker_port,
                tls_context=ctx,
                identifier=ca_lib.service_name(instance),
                protocol=aiomqtt.ProtocolVersion.V5,
                clean_start=True,
                timeout=10,
            ):
                pass

    def _credentials(
        self, identity: str, now: dt.datetime, folder: Path, service: bool = False
    ) -> tuple[ssl.SSLContext, int]:
        key = ca_lib.new_key()
        if service:
            issued = self.ca.issue_service(key.public_key(), identity, now, KICK_CERT_DAYS)
        else:
            issued = self.ca.issue_device(new_csr(key, identity), identity, now, KICK_CERT_DAYS)
        key_path = write_private(folder / "key.pem", ca_lib.key_pem(key))
        cert_path = write_private(folder / "cert.pem", issued.chain_pem)
        ca_path = write_private(folder / "ca.pem", self.ca.root_pem)
        return client_ssl_context(ca_path, cert_path, key_path), issued.serial

    async def _until_refused(self, ctx: ssl.SSLContext) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.reload_timeout
        while loop.time() < deadline:
            if await _handshake_refused(self.broker_host, self.broker_port, ctx):
                return
            await asyncio.sleep(0.05)
        raise TimeoutError("broker did not apply the new CRL after SIGHUP")


#: The broker never expires our sessions (``common.mqtt_link.SESSION_NEVER_EXPIRES``); the
#: cloud ends a terminal's once it has been offline this long (the expiry agents used to ask).
OFFLINE_SESSION_LIMIT = dt.timedelta(days=7)
#: How far back a new leader's first sweep looks past the limit (a leader gap longer than
#: this leaves such sessions to the broker's queue bound).
SWEEP_LOOKBACK = dt.timedelta(days=30)


@dataclass
class SessionSweep:
    """Which terminals' sessions are due to end, pass after pass (pure).

    ``due(now)`` is the range of last-seen times whose terminals crossed ``limit`` since the
    previous pass (on the first pass: the ``lookback`` before that); ``done(end)`` records
    a pass that ended every session of its range, so each session is ended about once."""

    limit: dt.timedelta = OFFLINE_SESSION_LIMIT
    lookback: dt.timedelta = SWEEP_LOOKBACK
    done_until: dt.datetime | None = None

    def due(self, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
        end = now - self.limit
        start = end - self.lookback if self.done_until is None else self.done_until
        return min(start, end), end

    def done(self, end: dt.datetime) -> None:
        self.done_until = end


def stale_service_links(usernames: Sequence[str], own_instance: str) -> list[str]:
    """The leader-only links (the desk's and the fleet sender's) of *other* instances, from
    the broker's client names: their sessions only hoard messages until ended."""
    mine = {ca_lib.service_name(own_instance + s) for s in LEADER_LINKS}
    return sorted(
        name.removeprefix(ca_lib.SERVICE_PREFIX)
        for name in usernames
        if name.startswith(ca_lib.SERVICE_PREFIX)
        and name.endswith(LEADER_LINKS)
        and name not in mine
    )


#: Suffixes of the service links only the lease holder runs (``fleet.sender``, the desk).
LEADER_LINKS = ("-desk", "-fleet")


class CrlPublisher(Protocol):
    async def publish(self, now: dt.datetime) -> bool: ...


async def keep_crl_fresh(
    publisher: CrlPublisher,
    clock: Callable[[], dt.datetime],
    stop: asyncio.Event,
    every_s: float = 12 * 3600,
) -> None:
    """Check the CRL now and every ``every_s`` until ``stop`` (run it in the API lifespan);
    it is republished, and the broker reloaded, only when revocations changed or it ages."""
    while not stop.is_set():
        changed = await publisher.publish(clock())
        # Said every time: an operator (and the restart test) can see the start's check ran.
        log.info("CRL checked: %s", "republished" if changed else "unchanged, no reload")
        with contextlib.suppress(TimeoutError):
            await within(stop.wait(), every_s)


async def _handshake_refused(host: str, port: int, ctx: ssl.SSLContext) -> bool:
    """True if the broker rejects this certificate (TLS 1.3 tells after the handshake)."""
    try:
        reader, writer = await within(
            asyncio.open_connection(host, port, ssl=ctx, server_hostname=host), 5
        )
    except (ssl.SSLError, ConnectionError):
        return True
    try:
        # An accepted client hears nothing until it sends CONNECT; a refused one gets an alert.
        data = await within(reader.read(1), 0.3)
        return not data
    except TimeoutError:
        return False
    except (ssl.SSLError, ConnectionError):
        return True
    finally:
        writer.close()
        with contextlib.suppress(ssl.SSLError, ConnectionError):
            await writer.wait_closed()
