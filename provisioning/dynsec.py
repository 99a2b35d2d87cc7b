"""Broker authorisation through Mosquitto's dynamic-security plugin.

Why not ``acl_file``: Mosquitto 2.0's ACL file grants every SUBSCRIBE and filters only at
delivery, so a terminal could join ingest's ``$share`` group and take a round-robin share of
the fleet's telemetry, which the broker then dropped (the shared-subscription hijack, see
docs/provisioning.md). The plugin checks the SUBSCRIBE itself and answers SUBACK 0x87.

Facts of Debian 12's Mosquitto 2.0.11 this module is built on (tested in
tests/provisioning/test_dynsec.py):

* the plugin does not substitute ``%u`` in ACL topics: every terminal gets its own role
  ``t:<id>`` holding exactly ``grants.TERMINAL_GRANTS`` for its id;
* certificate clients (``use_identity_as_username``) skip the plugin's password check, so
  ``disableClient`` alone only disconnects: disabling also removes the client's role, and an
  unknown or role-less username connects but every PUBLISH and SUBSCRIBE is refused;
* the plugin keeps its state in its JSON file and rewrites it on every change, so enrolled
  terminals and disabled ones survive a broker restart without any reload.

Pure part: ``initial_config`` (the JSON file ``broker.prepare`` writes) and the command
builders. ``BrokerAdmin`` sends them over ``$CONTROL/dynamic-security/v1`` with the admin
service identity, the only one whose role may publish there.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import ssl
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiomqtt

from common.aio import within
from common.topics import ROOT
from provisioning.ca import service_name
from provisioning.errors import ProvisioningError
from provisioning.grants import SERVICE_ROLES, TERMINAL_GRANTS

log = logging.getLogger("cuntong.provisioning.dynsec")

CONTROL = "$CONTROL/dynamic-security/v1"
RESPONSE = f"{CONTROL}/response"

#: Nothing is allowed unless a role says so; receiving is not filtered (a subscription was
#: already checked, and a terminal's role names its own topics only).
DEFAULT_ACCESS = {
    "publishClientSend": False,
    "publishClientReceive": True,
    "subscribe": False,
    "unsubscribe": True,
}


class BrokerAdminError(ProvisioningError):
    """The broker refused or did not answer a dynamic-security command."""


def terminal_role(terminal_id: str) -> str:
    return f"t:{terminal_id}"


def _acl(acltype: str, topic: str) -> dict[str, Any]:
    return {"acltype": acltype, "topic": topic, "priority": 0, "allow": True}


def _grants_to_acls(grants: Iterable[tuple[str, str]]) -> list[dict[str, Any]]:
    """``broker``-style (read|write, topic) grants as plugin ACLs. A read grant admits the
    plain subscription and a ``$share/<group>/`` one (2.0.11 matches the whole filter), and
    receiving: ``$CONTROL`` responses are refused without an explicit receive grant."""
    acls: list[dict[str, Any]] = []
    for access, topic in grants:
        if access == "write":
            acls.append(_acl("publishClientSend", topic))
        else:
            acls.append(_acl("subscribePattern", topic))
            acls.append(_acl("subscribePattern", f"$share/+/{topic}"))
            acls.append(_acl("publishClientReceive", topic))
    return acls


def terminal_acls(terminal_id: str) -> list[dict[str, Any]]:
    """The terminal's own uplink (publish) and its ``cmd/#`` and ``desk`` (subscribe)."""
    acls = []
    for access, suffix in TERMINAL_GRANTS:
        topic = f"{ROOT}/{terminal_id}/{suffix}"
        if access == "write":
            acls.append(_acl("publishClientSend", topic))
        else:
            acls.append(_acl("subscribePattern", topic))
            acls.append(_acl("publishClientReceive", topic))
    return acls


def service_roles() -> dict[str, list[dict[str, Any]]]:
    return {name: _grants_to_acls(grants) for name, grants in SERVICE_ROLES.items()}


def initial_config(
    services: Mapping[str, str],
    terminals: Iterable[str] = (),
    keep: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The plugin's JSON state: service clients and roles from ``services`` (instance →
    role), a client and role per id in ``terminals``, plus the terminal clients and roles
    of ``keep`` (the file the broker last saved: enrolled and disabled terminals survive a
    ``prepare``). Service entries are always rewritten from ``services``."""
    roles = service_roles()
    clients: dict[str, dict[str, Any]] = {
        service_name(inst): {"username": service_name(inst), "roles": [{"rolename": role}]}
        for inst, role in services.items()
    }
    kept_roles: dict[str, Any] = {}
    for role in (keep or {}).get("roles", []):
        name = str(role.get("rolename", ""))
        if name.startswith("t:"):
            # A kept terminal's role gets today's grants (a terminal enrolled before a
            # channel was added, such as ``ack``, gains it); who holds the role is kept.
            kept_roles[name] = {"rolename": name, "acls": terminal_acls(name[2:])}
    for client in (keep or {}).get("clients", []):
        name = str(client.get("username", ""))
        if name and not name.startswith("svc.") and name not in clients:
            clients[name] = client
    for tid in terminals:
        if tid not in clients:
            clients[tid] = {"username": tid, "roles": [{"rolename": terminal_role(tid)}]}
        kept_roles[terminal_role(tid)] = {
            "rolename": terminal_role(tid),
            "acls": terminal_acls(tid),
        }
    return {
        "defaultACLAccess": DEFAULT_ACCESS,
        "clients": list(clients.values()),
        "groups": [],
        "roles": [{"rolename": n, "acls": a} for n, a in roles.items()] + list(kept_roles.values()),
    }


# -- commands (pure) ----------------------------------------------------------------------


def add_terminal(terminal_id: str) -> list[dict[str, Any]]:
    """Create the terminal's role and client (an existing one keeps its roles: a terminal
    the operator disabled stays disabled when the cloud restarts)."""
    role = terminal_role(terminal_id)
    return [
        {"command": "createRole", "rolename": role, "acls": terminal_acls(terminal_id)},
        {"command": "createClient", "username": terminal_id, "roles": [{"rolename": role}]},
    ]


def disable_terminal(terminal_id: str) -> list[dict[str, Any]]:
    """Drop its rights first (a certificate client may reconnect at once), then disconnect."""
    return [
        {
            "command": "removeClientRole",
            "username": terminal_id,
            "rolename": terminal_role(terminal_id),
        },
        {"command": "disableClient", "username": terminal_id},
    ]


def enable_terminal(terminal_id: str) -> list[dict[str, Any]]:
    return [
        {"command": "enableClient", "username": terminal_id},
        {
            "command": "addClientRole",
            "username": terminal_id,
            "rolename": terminal_role(terminal_id),
        },
    ]


def delete_terminal(terminal_id: str) -> list[dict[str, Any]]:
    """Revocation: the client (disconnected by the broker) and its role go."""
    return [
        {"command": "deleteClient", "username": terminal_id},
        {"command": "deleteRole", "rolename": terminal_role(terminal_id)},
    ]


def cut_off(terminal_id: str) -> list[dict[str, Any]]:
    """Disconnect a revoked terminal's *live* connection, if any, without touching an
    offline session: a client without roles is created and deleted at once, and deleting
    a client makes the broker kick its connected sockets only. Used after a CRL reload,
    where a session-takeover kick could free a session the reload left listed twice
    (Mosquitto 2.0.11; docs/provisioning.md, "Broker reloads")."""
    return [
        {"command": "createClient", "username": terminal_id},
        {"command": "deleteClient", "username": terminal_id},
    ]


def get_client(terminal_id: str) -> list[dict[str, Any]]:
    return [{"command": "getClient", "username": terminal_id}]


#: Errors that mean "already in the wanted state" for the commands above.
_HARMLESS = ("already exists", "not found", "client not found", "role not found")


def harmless(error: str) -> bool:
    return any(h in error.lower() for h in _HARMLESS)


@dataclass(frozen=True, slots=True)
class ClientState:
    """What the broker holds for one username."""

    username: str
    exists: bool
    disabled: bool = False
    roles: tuple[str, ...] = ()

    @property
    def enabled(self) -> bool:
        """Connected, it may use its own topics."""
        return self.exists and not self.disabled and bool(self.roles)


def client_state(username: str, response: Mapping[str, Any]) -> ClientState:
    if response.get("error"):
        return ClientState(username, exists=False)
    client = response.get("data", {}).get("client", {})
    return ClientState(
        username,
        exists=True,
        disabled=bool(client.get("disabled", False)),
        roles=tuple(r["rolename"] for r in client.get("roles", [])),
    )


# -- the control link ---------------------------------------------------------------------

#: Commands per control message; the plugin answers them in one response.
BATCH = 100


@dataclass
class BrokerAdmin:
    """Sends dynamic-security commands as the admin service identity.

    One short connection per call, serialised by a lock: the broker makes the certificate's
    CN the client id, so two connections of the same identity would take over each other.
    """

    host: str
    port: int
    tls: Callable[[], ssl.SSLContext]
    timeout: float = 10.0
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    async def run(self, commands: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send ``commands`` (in batches) and return the plugin's responses in order."""
        responses: list[dict[str, Any]] = []
        async with self._lock:
            try:
                async with aiomqtt.Client(
                    self.host,
                    self.port,
                    tls_context=self.tls(),
                    protocol=aiomqtt.ProtocolVersion.V5,
                    timeout=self.timeout,
                ) as client:
                    await client.subscribe(RESPONSE, qos=1)
                    for start in range(0, len(commands), BATCH):
                        responses += await self._send(client, commands[start : start + BATCH])
            except (aiomqtt.MqttError, OSError, TimeoutError) as err:
                raise BrokerAdminError(f"dynamic-security control failed: {err}") from err
        return responses

    async def _send(
        self, client: aiomqtt.Client, batch: Sequence[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        tag = uuid.uuid4().hex
        tagged = [{**c, "correlationData": f"{tag}:{i}"} for i, c in enumerate(batch)]
        await client.publish(CONTROL, json.dumps({"commands": tagged}).encode(), qos=1)
        wanted = {f"{tag}:{i}" for i in range(len(batch))}
        got: dict[str, dict[str, Any]] = {}

        async def collect() -> None:
            async for message in client.messages:
                body = json.loads(bytes(message.payload))  # type: ignore[arg-type]
                for r in body.get("responses", []):
                    if r.get("correlationData") in wanted:
                        got[r["correlationData"]] = r
                if len(got) == len(wanted):
                    return

        await within(collect(), self.timeout)
        return [got[f"{tag}:{i}"] for i in range(len(batch))]

    async def checked(self, commands: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """``run`` that raises on any error other than "already so"."""
        responses = await self.run(commands)
        failed = [
            f"{r.get('command')}: {r['error']}"
            for r in responses
            if r.get("error") and not harmless(str(r["error"]))
        ]
        if failed:
            raise BrokerAdminError("; ".join(failed))
        return responses

    async def add_terminals(self, terminal_ids: Iterable[str]) -> None:
        """Idempotent: at enrolment, and at start for every enrolled terminal."""
        await self.checked([c for tid in terminal_ids for c in add_terminal(tid)])

    async def enrolled(self, terminal_ids: Sequence[str], now: dt.datetime) -> None:
        """``Provisioner.on_enrolled``. A broker that cannot be reached does not fail the
        enrolment (the certificate is issued and recorded): the next ``sync`` adds it."""
        try:
            await self.add_terminals(terminal_ids)
        except BrokerAdminError as err:
            log.warning("broker rights for %s not added yet: %s", list(terminal_ids), err)

    async def remove_terminals(self, terminal_ids: Iterable[str]) -> None:
        """Revocation: delete client and role (the broker disconnects the client)."""
        await self.checked([c for tid in terminal_ids for c in delete_terminal(tid)])

    async def cut_off(self, terminal_ids: Iterable[str]) -> None:
        """Disconnect revoked terminals still connected (``cut_off``); no takeover."""
        await self.checked([c for tid in terminal_ids for c in cut_off(tid)])

    async def client_names(self) -> list[str]:
        """Every username the plugin knows (terminals and services)."""
        (response,) = await self.checked([{"command": "listClients"}])
        return [str(name) for name in response.get("data", {}).get("clients", [])]

    async def disable(self, terminal_id: str) -> ClientState:
        await self.checked(disable_terminal(terminal_id))
        return await self.state(terminal_id)

    async def enable(self, terminal_id: str) -> ClientState:
        await self.checked(enable_terminal(terminal_id))
        return await self.state(terminal_id)

    async def state(self, terminal_id: str) -> ClientState:
        (response,) = await self.run(get_client(terminal_id))
        return client_state(terminal_id, response)

    async def sync(self, active: Iterable[str], removed: Iterable[str]) -> None:
        """Start-up reconciliation with the registry: active terminals have a client and
        role (existing clients keep their state), revoked ones have none."""
        await self.add_terminals(active)
        await self.remove_terminals(removed)
