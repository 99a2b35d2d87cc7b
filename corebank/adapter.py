"""The adapter for the bank's core system: post a business outcome exactly once.

    async with CoreBankClient(url, secret) as core:
        result = await core.post(Posting(session_id, "withdrawal", "debit", account, ...))
        ...
        settled = await core.reconcile(err.key)   # after CorePending

Rules (docs/transactions.md):
- the idempotency key is derived from the session and the business (and the posting kind),
  so a retry, a restarted worker or a second desk action carries the same key and the core
  applies it once;
- each attempt has a timeout; timeouts, connection errors and 5xx are retried with full-jitter
  backoff (common.backoff) under the same key; a 4xx is an answer and is never retried;
- when every attempt failed the outcome is unknown: CorePending(key), and `reconcile(key)`
  asks the core what happened (applied with its reference, or not applied at all).
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import httpx

from common import backoff
from corebank.errors import CorePending, CoreRefused

#: posting kinds the core knows; which business posts which kind is catalogue data
KINDS = ("debit", "credit", "inquiry", "record")


def idempotency_key(session_id: str, business: str, kind: str) -> str:
    """The same session, business and kind always give the same key."""
    digest = hashlib.sha256(f"{session_id}\x1f{business}\x1f{kind}".encode()).hexdigest()
    return f"ik-{digest[:40]}"


@dataclass(frozen=True)
class Posting:
    """One business outcome for the core: who, what, and the proofs the call gathered."""

    session_id: str
    business: str  # the catalogue's business code, e.g. "withdrawal"
    kind: str  # one of KINDS
    account: str  # the core's account reference (a token, never the card number)
    card_masked: str
    amount_fen: int = 0
    currency: str = "CNY"
    proofs: dict[str, Any] = field(default_factory=dict)  # arqc_verified, atc, pin_verified, …

    @property
    def key(self) -> str:
        return idempotency_key(self.session_id, self.business, self.kind)

    def body(self) -> dict[str, Any]:
        return {
            "idempotency_key": self.key,
            "session_id": self.session_id,
            "business": self.business,
            "kind": self.kind,
            "account": self.account,
            "card_masked": self.card_masked,
            "amount_fen": self.amount_fen,
            "currency": self.currency,
            "proofs": self.proofs,
        }


@dataclass(frozen=True)
class PostResult:
    key: str
    reference: str
    duplicate: bool  # the core had applied this key already (an earlier answer was lost)
    attempts: int = 1


@dataclass(frozen=True)
class PinTries:
    tries_left: int
    locked: bool


@dataclass(frozen=True)
class CardRecord:
    """What the core knows of a card (asked by the HSM's card token, never the number)."""

    account: str
    pvv: str = field(repr=False)
    locked: bool
    tries_left: int


class CoreBankClient:
    """Posts to the core over HTTP with timeouts, retries under one key, and reconcile."""

    def __init__(
        self,
        url: str,
        secret: str,
        timeout: float = 3.0,
        attempts: int = 4,
        backoff_base_s: float = 0.2,
        backoff_cap_s: float = 3.0,
        draw: Callable[[], float] = random.random,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be >= 1")
        self._http = httpx.AsyncClient(
            base_url=url,
            timeout=timeout,
            headers={"Authorization": f"Bearer {secret}"},
            transport=transport,
        )
        self.attempts = attempts
        self._base, self._cap = backoff_base_s, backoff_cap_s
        self._draw, self._sleep = draw, sleep

    async def __aenter__(self) -> CoreBankClient:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._http.aclose()

    async def post(self, posting: Posting) -> PostResult:
        """Apply the posting once; CoreRefused on a no, CorePending when no answer came."""
        if posting.kind not in KINDS:
            raise CoreRefused("bad_request", f"posting kind {posting.kind!r}; known: {KINDS}")
        last = ""
        for attempt in range(self.attempts):
            if attempt:
                await self._sleep(backoff.delay(attempt - 1, self._base, self._cap, self._draw()))
            try:
                resp = await self._http.post("/v1/postings", json=posting.body())
            except httpx.HTTPError as err:  # timeout, reset: the post may have been applied
                last = f"{type(err).__name__}"
                continue
            if resp.status_code >= 500:
                last = f"HTTP {resp.status_code}"
                continue
            data = _answer(resp)
            return PostResult(posting.key, data["reference"], bool(data["duplicate"]), attempt + 1)
        raise CorePending(posting.key, f"no answer after {self.attempts} attempts ({last})")

    async def reconcile(self, key: str) -> PostResult | None:
        """What the core did with `key`: the applied posting, or None if it never arrived."""
        try:
            resp = await self._http.get(f"/v1/postings/{key}")
        except httpx.HTTPError as err:
            raise CorePending(key, f"reconcile: {type(err).__name__}") from err
        if resp.status_code == 404:
            return None
        data = _answer(resp)
        return PostResult(key, data["reference"], True)

    async def card(self, token: str) -> CardRecord:
        """The card's account and PIN verification value; CoreRefused(card_unknown)."""
        try:
            resp = await self._http.get(f"/v1/cards/{token}")
        except httpx.HTTPError as err:
            raise CorePending("card", f"{type(err).__name__}") from err
        data = _answer(resp)
        return CardRecord(
            str(data["account"]), str(data["pvv"]), bool(data["locked"]), int(data["tries_left"])
        )

    async def record_pin_check(self, account: str, ok: bool) -> PinTries:
        """Tell the core the HSM's verdict on a PIN; CoreRefused(card_locked) once locked."""
        try:
            resp = await self._http.post("/v1/pin-checks", json={"account": account, "ok": ok})
        except httpx.HTTPError as err:
            raise CorePending("pin-check", f"{type(err).__name__}") from err
        data = _answer(resp)
        return PinTries(int(data["tries_left"]), bool(data["locked"]))


def _answer(resp: httpx.Response) -> dict[str, Any]:
    try:
        data = resp.json()
    except ValueError:
        data = {}
    if resp.is_success and isinstance(data, dict):
        return data
    detail = data.get("detail", resp.text) if isinstance(data, dict) else resp.text
    reason = data.get("reason", "bad_request") if isinstance(data, dict) else "bad_request"
    raise CoreRefused(reason, str(detail), resp.status_code)
