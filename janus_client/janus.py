"""Async client for one Janus node's HTTP API (Janus API and admin API).

    async with JanusClient(url, token=service_token) as janus:
        async with janus.session() as session:
            room = await VideoRoom.attach(session)
            ...

A ``JanusSession`` runs two background tasks while open: a long poll
(``GET /janus/<session>?maxev=…``) that routes each event to the request waiting for its
transaction, or else to the queue of the handle that sent it, and a keepalive that stops
Janus's ``session_timeout`` from reaping an idle session. Requests whose plugin reply is
asynchronous (join with an SDP offer, start with an SDP answer) return once the matching
event arrives; synchronous ones (create room, destroy room) return the reply at once.

``JanusAdmin`` adds and removes the per-session tokens that Janus's stored-token auth
checks on every Janus API request. The HTTP transport is injected (``httpx`` transport),
so unit tests run against an in-memory fake and integration tests against real Janus.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from common.aio import cancel_and_wait, within
from janus_client.errors import JanusError, JanusTimeout, JanusUnauthorized

Json = dict[str, Any]

#: Janus's own error codes that mean "who are you?" (403 unauthorized, 405 unauthorized plugin).
_AUTH_CODES = frozenset({403, 405})


def _tx() -> str:
    return secrets.token_hex(8)


def check_reply(reply: Json) -> Json:
    """Raise the matching JanusError for ``"janus": "error"`` replies; pass others through."""
    if reply.get("janus") == "error":
        err = reply.get("error", {})
        code, reason = err.get("code"), err.get("reason", "unknown error")
        cls = JanusUnauthorized if code in _AUTH_CODES else JanusError
        raise cls(reason, code)
    return reply


async def _call(http: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> Any:
    """One HTTP exchange with Janus; transport failures and non-JSON become JanusError."""
    try:
        resp = await http.request(method, url, **kwargs)
        resp.raise_for_status()
        reply = resp.json()
    except httpx.HTTPError as err:
        raise JanusError(f"{method} {url}: {err}") from err
    except ValueError as err:
        raise JanusError(f"{method} {url}: reply is not JSON") from err
    return check_reply(reply) if isinstance(reply, dict) else reply


#: Pauses before asking an unreachable long poll again (about 7 s in all, well inside
#: Janus's 60 s session timeout); then the session counts as lost.
POLL_RETRY_S = (0.5, 1.0, 2.0, 3.5)


@dataclass(frozen=True, slots=True)
class JanusEvent:
    """One asynchronous message from Janus for a handle."""

    kind: str  # "event", "webrtcup", "media", "hangup", "slowlink", "detached", ...
    sender: int | None
    data: Json  # plugindata.data for plugin events, the whole message otherwise
    jsep: Json | None = None

    @classmethod
    def parse(cls, msg: Json) -> JanusEvent:
        plugin = msg.get("plugindata")
        data = plugin.get("data", {}) if isinstance(plugin, dict) else msg
        return cls(str(msg.get("janus")), msg.get("sender"), data, msg.get("jsep"))


class JanusClient:
    """The Janus API of one node. ``token`` is sent with every request (stored-token auth)."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        request_timeout: float = 10.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.request_timeout = request_timeout
        self._transport = transport
        self._http: httpx.AsyncClient | None = None

    async def __aenter__(self) -> JanusClient:
        # Long polls hold a connection for up to 30 s; the read timeout must outlast them.
        timeout = httpx.Timeout(self.request_timeout, read=45.0)
        self._http = httpx.AsyncClient(transport=self._transport, timeout=timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            raise RuntimeError("use JanusClient in 'async with'")
        return self._http

    async def post(self, path: str, body: Json) -> Json:
        """POST a Janus API request (transaction and token added); the checked reply."""
        msg = {"transaction": _tx(), **body}
        if self.token is not None:
            msg.setdefault("token", self.token)
        reply: Json = await _call(self.http, "POST", f"{self.url}{path}", json=msg)
        return reply

    async def get(self, path: str, params: dict[str, str | int]) -> Any:
        if self.token is not None:
            params = {**params, "token": self.token}
        return await _call(self.http, "GET", f"{self.url}{path}", params=params)

    async def info(self) -> Json:
        return await self.post("", {"janus": "info"})

    @contextlib.asynccontextmanager
    async def session(self, keepalive_every: float = 25.0) -> AsyncIterator[JanusSession]:
        """A Janus session, polled and kept alive while the block runs, destroyed after."""
        reply = await self.post("", {"janus": "create"})
        session = JanusSession(self, int(reply["data"]["id"]), keepalive_every)
        session.start()
        try:
            yield session
        finally:
            await session.close()


@dataclass(eq=False)
class JanusSession:
    """One Janus session: its handles, its long poll and its keepalive (see module doc).

    If the long poll fails (Janus restarted, or reaped the session), the session is
    ``failed`` for good: waiting and later requests raise; the owner opens a new session
    (``JanusPool.check_health`` does that for the backend's control sessions)."""

    client: JanusClient
    id: int
    keepalive_every: float = 25.0
    _pending: dict[str, asyncio.Future[Json]] = field(default_factory=dict)
    _queues: dict[int, asyncio.Queue[JanusEvent]] = field(default_factory=dict)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _failure: JanusError | None = None
    #: Set while no broken long poll of ours can be left waiting in Janus (see ``_flush``).
    _clear: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._clear.set()

    @property
    def failed(self) -> bool:
        """True once the long poll lost the session (Janus restarted or timed it out)."""
        return self._failure is not None

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._poll(), name=f"janus-poll-{self.id}"),
            asyncio.create_task(self._keepalive(), name=f"janus-keepalive-{self.id}"),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        try:
            for task in self._tasks:
                await cancel_and_wait(task)
        finally:  # stopped meanwhile: the session is still destroyed, then the stop goes on
            with contextlib.suppress(JanusError):
                await self.client.post(f"/{self.id}", {"janus": "destroy"})

    async def keepalive(self) -> None:
        await self.client.post(f"/{self.id}", {"janus": "keepalive"})

    async def attach(self, plugin: str) -> int:
        reply = await self.client.post(f"/{self.id}", {"janus": "attach", "plugin": plugin})
        handle_id = int(reply["data"]["id"])
        self._queues[handle_id] = asyncio.Queue()
        return handle_id

    async def detach(self, handle_id: int) -> None:
        await self.client.post(f"/{self.id}/{handle_id}", {"janus": "detach"})
        self._queues.pop(handle_id, None)

    async def message(
        self, handle_id: int, body: Json, jsep: Json | None = None, wait: float = 10.0
    ) -> JanusEvent:
        """Send a plugin message; the synchronous reply, or the event answering it."""
        if not self._clear.is_set():  # its answer would go to a dead poll: flush it first
            try:
                await within(self._clear.wait(), wait)
            except TimeoutError:
                raise JanusTimeout(
                    f"{body.get('request')}: Janus unreachable for {wait}s"
                ) from None
        if self._failure is not None:
            raise self._failure
        tx = _tx()
        msg: Json = {"janus": "message", "transaction": tx, "body": body}
        if jsep is not None:
            msg["jsep"] = jsep
        # Registered before sending: the event can win the race against the "ack".
        waiter = asyncio.get_running_loop().create_future()
        self._pending[tx] = waiter
        try:
            reply = await self.client.post(f"/{self.id}/{handle_id}", msg)
            if reply.get("janus") != "ack":
                return JanusEvent.parse(reply)
            try:
                return JanusEvent.parse(await within(waiter, wait))
            except TimeoutError:
                raise JanusTimeout(f"no answer to {body.get('request')} in {wait}s") from None
        finally:
            self._pending.pop(tx, None)

    async def next_event(self, handle_id: int, wait: float = 10.0) -> JanusEvent:
        """The next event for a handle that no request was waiting for (webrtcup, hangup...).

        ``common.aio.within``, not ``wait_for``: Python 3.11's ``wait_for`` returns the result
        instead of raising when the caller is cancelled just as an event arrives (fixed in
        3.12, python/cpython#86296), and a watch loop around it then never stopped: a call's
        teardown waited forever for it (seen in the weak-link test, where Janus sends
        ``slowlink`` events often). Cancelled, the event stays in the queue."""
        try:
            return await within(self._queues[handle_id].get(), wait)
        except TimeoutError:
            raise JanusTimeout(f"no event for handle {handle_id} in {wait}s") from None

    def _route(self, msg: Json) -> None:
        if msg.get("janus") == "keepalive":
            return
        waiter = self._pending.get(str(msg.get("transaction")))
        if waiter is not None and not waiter.done() and msg.get("janus") == "event":
            waiter.set_result(msg)  # plugin errors arrive this way too; the plugin wrapper checks
            return
        sender = msg.get("sender")
        if isinstance(sender, int) and sender in self._queues:
            self._queues[sender].put_nowait(JanusEvent.parse(msg))

    async def _flush(self) -> None:
        """Clear out a long poll of ours that broke on the way but may still wait in Janus.

        When what carried our poll dies mid-poll (the cloud's signalling gate, a SIGKILLed
        leader replica), Janus does not notice the dead connection: it hands the session's
        next events to that poll and they are lost, e.g. the answer to a join sent after a
        takeover (seen with real Janus: lost, until its 30 s poll ran out). A throwaway
        handle's detach is such an event: it goes to the dead poll, if there is one (else
        it comes to us and is dropped), and the session's later events come to us."""
        handle = await self.attach("janus.plugin.videoroom")
        await self.detach(handle)
        self._clear.set()

    async def _poll(self) -> None:
        retries = 0
        while True:
            try:
                if not self._clear.is_set():
                    await self._flush()
                batch = await self.client.get(f"/{self.id}", {"maxev": 10, "rid": _tx()})
            except JanusError as err:
                # Unreachable (no Janus error code): a blip on the path, e.g. the cloud's
                # signalling gate restarting behind its load balancer, is tried again
                # within Janus's session timeout, flushing the broken poll first. An answer
                # from Janus (no such session, token revoked) is final at once.
                if err.code is None and retries < len(POLL_RETRY_S):
                    self._clear.clear()
                    await asyncio.sleep(POLL_RETRY_S[retries])
                    retries += 1
                    continue
                self._failure = err
                self._clear.set()  # requests waiting for the flush raise the failure
                for waiter in self._pending.values():
                    if not waiter.done():
                        waiter.set_exception(err)
                return
            retries = 0
            for msg in batch if isinstance(batch, list) else [batch]:
                self._route(msg)

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(self.keepalive_every)
            with contextlib.suppress(JanusError):
                await self.keepalive()


class JanusAdmin:
    """The admin API of one node: stored tokens, and counts for load reporting."""

    def __init__(
        self, url: str, secret: str, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.url = url.rstrip("/")
        self.secret = secret
        self._transport = transport
        self._http: httpx.AsyncClient | None = None

    async def __aenter__(self) -> JanusAdmin:
        self._http = httpx.AsyncClient(transport=self._transport, timeout=10.0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def request(self, body: Json) -> Json:
        if self._http is None:
            raise RuntimeError("use JanusAdmin in 'async with'")
        msg = {"transaction": _tx(), "admin_secret": self.secret, **body}
        reply: Json = await _call(self._http, "POST", self.url, json=msg)
        return reply

    async def add_token(
        self, token: str, plugins: tuple[str, ...] = ("janus.plugin.videoroom",)
    ) -> None:
        """Allow ``token`` on the Janus API, for these plugins only."""
        await self.request({"janus": "add_token", "token": token, "plugins": list(plugins)})

    async def remove_token(self, token: str) -> None:
        await self.request({"janus": "remove_token", "token": token})

    async def list_tokens(self) -> list[str]:
        reply = await self.request({"janus": "list_tokens"})
        return [t["token"] for t in reply["data"]["tokens"]]

    async def list_sessions(self) -> list[int]:
        reply = await self.request({"janus": "list_sessions"})
        return [int(s) for s in reply["sessions"]]
