"""An in-memory Janus HTTP API for client unit tests (injected as an httpx transport).

It implements just what the client uses: create/attach/keepalive/destroy/detach, plugin
messages answered by a table of handlers (synchronously, or with an ``ack`` followed by an
event on the long poll), the long poll itself, token checks and the admin API.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

Json = dict[str, Any]
#: A plugin handler: (body, jsep) -> ("sync", data), ("async", data, jsep-or-None), or
#: ("ack-only", data) for a request Janus acknowledges and never answers.
Handler = Callable[[Json, Json | None], tuple[Any, ...]]


def _error(code: int, reason: str, tx: str | None = None) -> Json:
    return {"janus": "error", "transaction": tx, "error": {"code": code, "reason": reason}}


@dataclass
class FakeJanus:
    tokens: set[str] = field(default_factory=lambda: {"svc"})
    admin_secret: str = "admin"
    handlers: dict[str, Handler] = field(default_factory=dict)
    sessions: dict[int, asyncio.Queue[Json]] = field(default_factory=dict)
    handles: dict[int, int] = field(default_factory=dict)  # handle -> session
    requests: list[Json] = field(default_factory=list)
    keepalives: int = 0
    destroyed: list[int] = field(default_factory=list)
    #: Deliver async events before the ack reaches the client (the race the client handles).
    event_before_ack: bool = True
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1000))

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        parts = [p for p in request.url.path.split("/") if p]
        if parts[0] == "admin":
            return httpx.Response(200, json=self._admin(json.loads(request.content)))
        ids = [int(p) for p in parts[1:]]
        if request.method == "GET":
            return await self._poll(ids[0], request.url.params.get("token"))
        body = json.loads(request.content)
        self.requests.append(body)
        tx = body.get("transaction")
        if body.get("janus") != "info" and body.get("token") not in self.tokens:
            return httpx.Response(200, json=_error(403, "Unauthorized request", tx))
        if ids and ids[0] not in self.sessions:
            return httpx.Response(200, json=_error(458, "No such session", tx))
        return httpx.Response(200, json=self._janus(body, ids))

    def _janus(self, body: Json, ids: list[int]) -> Json:
        tx, kind = body["transaction"], body["janus"]
        if kind == "info":
            return {"janus": "server_info", "transaction": tx, "version": 1102}
        if kind == "create":
            sid = next(self._ids)
            self.sessions[sid] = asyncio.Queue()
            return {"janus": "success", "transaction": tx, "data": {"id": sid}}
        if kind == "attach":
            hid = next(self._ids)
            self.handles[hid] = ids[0]
            return {"janus": "success", "transaction": tx, "data": {"id": hid}}
        if kind == "keepalive":
            self.keepalives += 1
            return {"janus": "ack", "transaction": tx}
        if kind == "destroy":
            self.destroyed.append(ids[0])
            self.sessions.pop(ids[0]).put_nowait({"janus": "_closed"})
            return {"janus": "success", "transaction": tx}
        if kind in ("detach", "trickle"):
            return {"janus": "success" if kind == "detach" else "ack", "transaction": tx}
        assert kind == "message", kind
        sid, hid = ids
        handler = self.handlers[body["body"]["request"]]
        mode, data, *rest = handler(body["body"], body.get("jsep"))
        plugindata = {"plugin": "janus.plugin.videoroom", "data": data}
        if mode == "sync":
            return {"janus": "success", "transaction": tx, "sender": hid, "plugindata": plugindata}
        if mode == "ack-only":
            return {"janus": "ack", "transaction": tx}
        event: Json = {"janus": "event", "sender": hid, "transaction": tx, "plugindata": plugindata}
        if rest and rest[0] is not None:
            event["jsep"] = rest[0]
        if self.event_before_ack:
            self.sessions[sid].put_nowait(event)
        else:
            asyncio.get_running_loop().call_later(0.05, self.sessions[sid].put_nowait, event)
        return {"janus": "ack", "transaction": tx}

    def push(self, session_id: int, msg: Json) -> None:
        """Queue an unsolicited event (webrtcup, hangup...) for the long poll."""
        self.sessions[session_id].put_nowait(msg)

    async def _poll(self, sid: int, token: str | None) -> httpx.Response:
        if token not in self.tokens:
            return httpx.Response(200, json=_error(403, "Unauthorized request"))
        queue = self.sessions.get(sid)
        if queue is None:
            return httpx.Response(200, json=_error(458, "No such session"))
        try:
            msg = await asyncio.wait_for(queue.get(), 0.5)
        except TimeoutError:
            return httpx.Response(200, json=[{"janus": "keepalive"}])
        if msg["janus"] == "_closed":
            return httpx.Response(200, json=_error(458, "No such session"))
        return httpx.Response(200, json=[msg])

    def _admin(self, body: Json) -> Json:
        tx = body.get("transaction")
        if body.get("admin_secret") != self.admin_secret:
            return _error(403, "Unauthorized request (wrong or missing secret/token)", tx)
        kind = body["janus"]
        if kind == "add_token":
            self.tokens.add(body["token"])
            return {"janus": "success", "transaction": tx, "data": {"plugins": body["plugins"]}}
        if kind == "remove_token":
            self.tokens.discard(body["token"])
            return {"janus": "success", "transaction": tx}
        if kind == "list_tokens":
            toks = [{"token": t} for t in sorted(self.tokens)]
            return {"janus": "success", "transaction": tx, "data": {"tokens": toks}}
        return _error(490, f"unknown admin request {kind}", tx)
