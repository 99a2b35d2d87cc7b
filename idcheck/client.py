"""The terminal's client for the identity gateway: signed, retried, and bounded in time.

    client = IdentityClient(url, key=secret, key_id="terminal-0042", total_timeout_s=8.0)
    answer = await client.check("sess-123", name="张建国", id_number="610102...")

Each try has its own timeout; 5xx, timeouts and refused connections are retried with
full-jitter backoff (common.backoff); the whole call never takes longer than
`total_timeout_s` and then raises IdentityServiceDown. 4xx is not retried (RequestRefused).
The answer must be signed by the gateway and echo the session id that was signed into the
request; the id number never appears in a log line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from common import backoff
from common.masking import mask_id_number
from idcheck import signing
from idcheck.errors import AnswerInvalid, IdentityServiceDown, RequestRefused
from idcheck.outcomes import RESULTS, Outcome

log = logging.getLogger(__name__)
PATH = "/v1/verify"


@dataclass(frozen=True)
class IdentityAnswer:
    """The service's verdict on one (name, id number), bound to one session."""

    outcome: Outcome
    query_id: str
    session_id: str
    result_text: str  # the service's own words (一致 / 不一致 / 库中无此号 / 已死亡)
    attempts: int


class IdentityClient:
    """One gateway; `transport` lets tests inject an httpx transport, `clock` a unix clock."""

    def __init__(
        self,
        base_url: str,
        key: bytes,
        key_id: str,
        try_timeout_s: float = 3.0,
        total_timeout_s: float = 8.0,
        attempts: int = 3,
        backoff_base_s: float = 0.2,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be >= 1")
        self.base_url = base_url.rstrip("/")
        self.key = key
        self.key_id = key_id
        self.try_timeout_s = try_timeout_s
        self.total_timeout_s = total_timeout_s
        self.attempts = attempts
        self.backoff_base_s = backoff_base_s
        self.transport = transport
        self.clock = clock

    async def check(self, session_id: str, name: str, id_number: str) -> IdentityAnswer:
        """Ask the service whether `name` holds `id_number`; see the module doc for errors."""
        body = json.dumps(
            {"session_id": session_id, "name": name, "id_number": id_number},
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
        last = "no try made"
        try:
            async with (
                asyncio.timeout(self.total_timeout_s),
                httpx.AsyncClient(timeout=self.try_timeout_s, transport=self.transport) as http,
            ):
                for attempt in range(self.attempts):
                    if attempt:
                        await asyncio.sleep(
                            backoff.delay(attempt - 1, self.backoff_base_s, 2.0, random.random())
                        )
                    try:
                        response = await self._post(http, session_id, body)
                    except httpx.TransportError as err:  # timeouts, refused, reset
                        last = f"{type(err).__name__}: {err}"
                        continue
                    if response.status_code >= 500:
                        last = f"HTTP {response.status_code}"
                        continue
                    return self._answer(response, session_id, attempt + 1, id_number)
        except TimeoutError:
            last = f"{last}; gave up after {self.total_timeout_s:g} s"
        log.warning("identity service down for session %s: %s", session_id, last)
        raise IdentityServiceDown(f"identity service gave no answer: {last}")

    async def _post(self, http: httpx.AsyncClient, session_id: str, body: bytes) -> httpx.Response:
        signed = signing.sign(
            self.key,
            self.key_id,
            "POST",
            PATH,
            int(self.clock()),
            secrets.token_hex(12),
            session_id,
            body,
        )
        headers = {"content-type": "application/json", **signed.headers()}
        return await http.post(self.base_url + PATH, content=body, headers=headers)

    def _answer(
        self, response: httpx.Response, session_id: str, attempts: int, id_number: str
    ) -> IdentityAnswer:
        if 400 <= response.status_code < 500:
            try:
                reason = str(response.json().get("error", "refused"))
                detail = str(response.json().get("detail", ""))
            except ValueError:
                reason, detail = "refused", response.text[:200]
            raise RequestRefused(reason, detail)
        try:
            signed = signing.Signed.from_headers(response.headers)
        except ValueError as err:
            raise AnswerInvalid(f"unsigned answer: {err}") from err
        problem = signing.check(self.key, signed, "ANSWER", PATH, response.content, self.clock())
        if problem is not None:
            raise AnswerInvalid(f"answer signature: {problem}")
        try:
            data = response.json()
            result, query_id, echoed = data["result"], data["query_id"], data["session_id"]
        except (ValueError, KeyError, TypeError) as err:
            raise AnswerInvalid(f"answer does not parse: {err}") from err
        if echoed != session_id or signed.session_id != session_id:
            raise AnswerInvalid(f"answer is for session {echoed!r}, not {session_id!r}")
        if result not in RESULTS:
            raise AnswerInvalid(f"unknown result {result!r}")
        answer = IdentityAnswer(RESULTS[result], str(query_id), session_id, result, attempts)
        log.info(
            "identity check %s for %s: %s (query %s, %d tries)",
            session_id,
            mask_id_number(id_number),
            answer.outcome,
            query_id,
            attempts,
        )
        return answer
