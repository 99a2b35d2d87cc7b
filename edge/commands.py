"""Cloud → terminal commands the agent answers, as a table of handlers.

A request arrives on ``cuntong/v1/t/<id>/cmd/<name>`` with the MQTT 5 response topic and
correlation data set; the reply goes to that response topic with the same correlation data.
Unknown commands and bad arguments are answered with an error, never ignored, so the
cloud's command record always closes.

Commands for one component run one at a time (``Serial``): two OTA installs of the same
component, or a wipe and a log collection, queue behind each other; commands for different
components (a ping beside a liveness check) still run side by side.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Reply:
    ok: bool
    result: dict[str, Any]

    def to_bytes(self) -> bytes:
        return json.dumps({"ok": self.ok, "result": self.result}, ensure_ascii=False).encode()


#: The component each command acts on, where it is not named in the arguments. Commands
#: not listed here (ping, ota_status) touch nothing and need no turn.
COMPONENT_OF: dict[str, str] = {
    "shadow_delta": "config",
    "set_config": "config",
    "lock_screen": "screen",
    "unlock_screen": "screen",
    "wipe": "data",
    "collect_logs": "data",
    "reboot": "power",
    "restart_agent": "power",
    "peripheral_selftest": "peripherals",
    "liveness_check": "camera",
    "pinpad_load_working_key": "pinpad",
}
#: Commands whose ``component`` argument names what they act on.
BY_ARGUMENT = frozenset({"ota_install", "ota_rollback"})


def component_of(name: str, args: dict[str, Any]) -> str | None:
    """What ``name`` acts on (None: nothing, it runs at once)."""
    if name in BY_ARGUMENT:
        component = args.get("component")
        return f"ota:{component}" if isinstance(component, str) else None
    return COMPONENT_OF.get(name)


class Serial:
    """One lock per component, made on first use."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}

    def lock(self, component: str) -> asyncio.Lock:
        return self._locks.setdefault(component, asyncio.Lock())

    def busy(self, component: str) -> bool:
        return component in self._locks and self._locks[component].locked()


async def dispatch(
    handlers: dict[str, Handler], name: str, payload: bytes, serial: Serial | None = None
) -> Reply:
    """An unsigned command (development mode): the payload is the JSON arguments."""
    try:
        args = json.loads(payload) if payload else {}
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        return Reply(False, {"error": f"arguments are not JSON: {err}"})
    if not isinstance(args, dict):
        return Reply(False, {"error": "arguments must be a JSON object"})
    return await run(handlers, name, args, serial)


async def run(
    handlers: dict[str, Handler], name: str, args: dict[str, Any], serial: Serial | None = None
) -> Reply:
    """Run a command whose arguments are already parsed (and, when secured, verified),
    after any command still running on the same component."""
    handler = handlers.get(name)
    if handler is None:
        return Reply(False, {"error": f"unknown command {name!r}", "known": sorted(handlers)})
    component = component_of(name, args) if serial is not None else None
    if component is None:
        return await _call(handler, args)
    assert serial is not None
    async with serial.lock(component):
        return await _call(handler, args)


async def _call(handler: Handler, args: dict[str, Any]) -> Reply:
    try:
        return Reply(True, await handler(args))
    except (ValueError, KeyError, TypeError) as err:
        return Reply(False, {"error": str(err)})
