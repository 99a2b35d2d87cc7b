"""Cloud → terminal commands the agent answers, as a table of handlers.

A request arrives on ``cuntong/v1/t/<id>/cmd/<name>`` with the MQTT 5 response topic and
correlation data set; the reply goes to that response topic with the same correlation data.
Unknown commands and bad arguments are answered with an error, never ignored, so the
cloud's command record always closes.
"""

from __future__ import annotations

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


async def dispatch(handlers: dict[str, Handler], name: str, payload: bytes) -> Reply:
    handler = handlers.get(name)
    if handler is None:
        return Reply(False, {"error": f"unknown command {name!r}", "known": sorted(handlers)})
    try:
        args = json.loads(payload) if payload else {}
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        return Reply(False, {"error": f"arguments are not JSON: {err}"})
    if not isinstance(args, dict):
        return Reply(False, {"error": "arguments must be a JSON object"})
    try:
        return Reply(True, await handler(args))
    except (ValueError, KeyError, TypeError) as err:
        return Reply(False, {"error": str(err)})
