"""Who may do what on the broker: the grant tables both authorisation backends use."""

from __future__ import annotations

from collections.abc import Mapping

from common.topics import BROKER_REFUSED, ROOT, Channel

#: (access, channel suffix) for every terminal: a role per terminal (``dynsec.terminal_acls``).
TERMINAL_GRANTS: tuple[tuple[str, str], ...] = (
    ("write", Channel.STATUS.value),
    ("write", Channel.TELEMETRY.value),
    ("write", Channel.EVENT.value),
    ("write", Channel.CMD_REPLY.value),
    ("write", Channel.SESSION.value),
    ("read", f"{Channel.CMD.value}/#"),
    ("read", Channel.DESK.value),
    ("read", Channel.ACK.value),
)

_ALL = f"{ROOT}/+"
#: What each kind of cloud service may do on the broker.
SERVICE_ROLES: Mapping[str, tuple[tuple[str, str], ...]] = {
    # Ingest and command sender: reads every terminal's uplink, writes commands.
    "cloud": (
        ("read", f"{_ALL}/{Channel.STATUS.value}"),
        ("read", f"{_ALL}/{Channel.TELEMETRY.value}"),
        ("read", f"{_ALL}/{Channel.EVENT.value}"),
        ("read", f"{_ALL}/{Channel.CMD_REPLY.value}"),
        ("write", f"{_ALL}/{Channel.CMD.value}/#"),
        ("read", f"{_ALL}/{Channel.SESSION.value}"),
        ("write", f"{_ALL}/{Channel.DESK.value}"),
        # Ingest confirms storage to each terminal (its spool keeps messages until then).
        ("write", f"{_ALL}/{Channel.ACK.value}"),
        # The broker's refusal plugin reports refused subscriptions here; ingest counts them.
        ("read", BROKER_REFUSED),
    ),
    # Read-only observer (dashboards, tests).
    "monitor": (("read", f"{ROOT}/#"),),
    # The dynamic-security control topic: adds, disables and deletes terminals' broker
    # rights. Only the cloud API's ``<instance>-admin`` identity holds it.
    "admin": (
        ("write", "$CONTROL/dynamic-security/v1"),
        ("read", "$CONTROL/dynamic-security/v1/response"),
    ),
}
#: Service instances (certificate CN ``svc.<instance>``) and their role. The broker makes
#: the CN the client id, so every process connecting needs its own instance name:
#: e.g. {"api": "cloud", "ingest-1": "cloud", "ingest-2": "cloud"}.
DEFAULT_SERVICES: Mapping[str, str] = {"cloud": "cloud", "monitor": "monitor", "admin": "admin"}
