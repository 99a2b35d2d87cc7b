"""The Janus signalling gate's I/O shell: forward a participant's Janus API request to
its node, unless it is a join outside the grant's room, which is refused, audited and
reported (``cloud.media.gate`` decides; ``cloud.api.routes.janus_gate`` serves it).

The audit entry is ``media_join_refused`` by the grant's holder (``terminal:<id>`` for a
customer, else the account) on the room it aimed at, with the grant's session, role,
feed and terminal. A customer's refused join is also a rejected act of its terminal:
``on_signal`` listeners (the fleet's misbehaviour watch) hear ``(terminal_id,
"media_refused")``.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import httpx

from cloud.auth import audit
from cloud.media import gate
from cloud.media.pool import JanusPool
from cloud.sessions.desk import Desk
from common.wire.call import CUSTOMER

log = logging.getLogger("cuntong.sessions.gate")

#: What the fleet's misbehaviour watch counts for a customer's refused join.
SIGNAL = "media_refused"
#: Janus holds a long poll up to 30 s; leave room for a slow node.
TIMEOUT = httpx.Timeout(10.0, read=65.0)
#: Every participant holds one long poll open through the gate (a node's 50 calls are
#: 100-150 at once), so the pool to the nodes is not capped: httpx's default of 100
#: connections would make the 101st participant wait, then fail, while polls sit idle.
#: Kept-alive connections spare a TCP handshake on each request.
LIMITS = httpx.Limits(max_connections=None, max_keepalive_connections=256)
#: Sessions remembered as created here or flushed, before the set is started over.
_KNOWN_MAX = 100_000


def _client() -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=TIMEOUT, limits=LIMITS)


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    content: bytes
    content_type: str = "application/json"


def _json(status: int, body: object) -> Answer:
    return Answer(status, json.dumps(body).encode())


def _token(query: str, body: bytes) -> str | None:
    """The Janus token a request carries: a long poll's in its query, a POST's in its body."""
    token = httpx.QueryParams(query).get("token")
    if token is None and body:
        with contextlib.suppress(ValueError, AttributeError):
            token = json.loads(body).get("token")
    return str(token) if token else None


@dataclass
class JanusGate:
    pool: JanusPool
    desk: Desk
    clock: Callable[[], datetime]
    http: httpx.AsyncClient = field(default_factory=_client)
    on_signal: list[Callable[[str, str], None]] = field(default_factory=list)
    #: The Janus sessions (node, id) this gate saw created or has flushed (``_flush``).
    known: set[tuple[str, str]] = field(default_factory=set)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _flush(self, base: str, node: str, session: str, token: str | None) -> None:
        """Before this gate carries the first request of a session it did not see created
        (one from a previous leader's gate, which died: a takeover, or a term restarted),
        clear out the poll that gate left waiting inside Janus. Janus does not notice the
        dead connection and hands it the session's next event, which is lost: the answer to
        a participant's next join, its next room notice. A throwaway handle's detach is such
        an event, so it goes there instead (if no dead poll waits, to the participant, whose
        client ignores a stray ``detached``). Done here, it covers every client, including a
        browser whose fetch was retried by the browser or HAProxy without the page seeing
        its poll break (``janus_client`` and ``teller-media.js`` flush too when they do)."""
        if len(self.known) > _KNOWN_MAX:  # sessions that timed out are never destroyed here
            self.known.clear()  # costs one more flush for each live one
        self.known.add((node, session))
        auth = {"token": token} if token else {}
        try:
            attached = await self.http.post(
                f"{base}/{session}",
                json={
                    "janus": "attach",
                    "plugin": gate.PLUGIN,
                    "transaction": "gate-flush",
                    **auth,
                },
            )
            handle = int(attached.json()["data"]["id"])
            await self.http.post(
                f"{base}/{session}/{handle}",
                json={"janus": "detach", "transaction": "gate-flush", **auth},
            )
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as err:
            # No such session, a revoked token, Janus down: the poll itself will say so.
            log.info("Janus session %s on %s not flushed: %s", session, node, err)

    def _note(self, node: str, path: str, body: bytes, answer: httpx.Response) -> None:
        """Remember sessions created through this gate (no poll of theirs can be left
        elsewhere), forget destroyed ones."""
        with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
            if path == "" and answer.json()["janus"] == "success":
                if json.loads(body).get("janus") == "create":
                    self.known.add((node, str(answer.json()["data"]["id"])))
            elif gate.SESSION.match(path) and json.loads(body).get("janus") == "destroy":
                self.known.discard((node, path))

    async def handle(self, node: str, path: str, method: str, query: str, body: bytes) -> Answer:
        base = self.pool.api_url(node)
        if base is None:
            return _json(404, {"detail": f"no Janus node {node!r}"})
        if not gate.PATH.match(path):
            return _json(404, {"detail": "not a Janus API path"})
        if len(body) > gate.MAX_BODY:
            return _json(413, {"detail": f"Janus request over {gate.MAX_BODY} bytes"})
        if method == "POST":
            refused = await self._refused(path, body)
            if refused is not None:
                return refused
        url = f"{base.rstrip('/')}/{path}" if path else base
        session = path.split("/")[0]
        if session.isdigit() and (node, session) not in self.known:
            await self._flush(base.rstrip("/"), node, session, _token(query, body))
        try:
            r = await self.http.request(
                method,
                url,
                params=httpx.QueryParams(query),
                content=body if method == "POST" else None,
                headers={"Content-Type": "application/json"} if method == "POST" else None,
            )
        except httpx.HTTPError as err:
            log.warning("Janus node %s did not answer through the gate: %s", node, err)
            return _json(502, {"detail": f"Janus node {node} did not answer"})
        if method == "POST":
            self._note(node, path, body, r)
        return Answer(r.status_code, r.content, r.headers.get("content-type", "application/json"))

    async def _refused(self, path: str, body: bytes) -> Answer | None:
        """The refusal of a join outside its grant's room (audited), else None."""
        try:
            message = json.loads(body)
        except ValueError:
            return None  # Janus answers malformed JSON itself
        attempt = gate.join_attempt(message)
        if attempt is None:
            return None
        holder = self.desk.holder(attempt.token)
        if holder is None or not gate.outside(attempt, holder):
            return None  # not a live grant of ours (Janus checks it), or its own room
        ids = [int(part) for part in path.split("/")] + [0, 0]
        await audit.record(
            holder.actor,
            "media_join_refused",
            attempt.room[:255],
            self.clock(),
            session=holder.session,
            role=holder.role,
            feed=holder.feed,
            terminal=holder.terminal_id,
            request=attempt.request,
            ptype=attempt.ptype[:32],
        )
        log.warning(
            "refused %s into room %s by %s (grant for %s)",
            attempt.request, attempt.room, holder.actor, holder.session,
        )  # fmt: skip
        if holder.role == CUSTOMER:
            for listener in self.on_signal:
                listener(holder.terminal_id, SIGNAL)
        return _json(200, gate.refusal(message, ids[0], ids[1]))
