"""A simulator of the bank's core system: an HTTP service with its own SQLite database.

    python -m corebank.simulator --db STATE/core.sqlite3 --port 7800 --secret-file STATE/core.secret

It keeps accounts (balance, wrong-PIN count, lock) and postings keyed by idempotency key:
the same key with the same content answers the first posting's reference again
(`duplicate: true`), the same key with other content is refused (409). Each posting gets a
reference number `CB<yyyymmdd><8 digits>`. Three wrong PINs in a row lock the card; a right
one resets the count. Cards are known by the HSM's card token (never the number): each has
its account and the PVV of its PIN; a posting whose proofs carry ``new_pvv`` (a verified
PIN reset) sets that card's PVV and lifts the lock in the same transaction.
Every /v1 request needs `Authorization: Bearer <secret>`.

With `--faults`, tests can make it lose answers: POST /v1/faults {"delay_answer_s": 2,
"count": 1} commits the next posting, then holds the answer past the client's timeout (a
lost answer as the client sees it); {"fail_before": 1} answers 503 without applying;
{"hold": true} makes the core hang: every posting waits, applying nothing and answering
nothing, until a later call without it (each call sets the whole switch) lets them all go on;
a held posting whose client gave up meanwhile is still applied then (the same key applies
once). GET /v1/faults shows the switch and how many postings are held.
Accounts are created through POST /v1/accounts (test and demo data).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import hmac
import json
import sqlite3
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from common.errors import CuntongError

PIN_TRIES = 3

SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    account TEXT PRIMARY KEY, balance_fen INTEGER NOT NULL,
    pin_failures INTEGER NOT NULL DEFAULT 0, locked INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS postings (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, idem_key TEXT UNIQUE NOT NULL,
    reference TEXT NOT NULL, body_hash TEXT NOT NULL, account TEXT NOT NULL,
    business TEXT NOT NULL, kind TEXT NOT NULL, amount_fen INTEGER NOT NULL,
    session_id TEXT NOT NULL, proofs TEXT NOT NULL, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cards (
    card_token TEXT PRIMARY KEY, account TEXT NOT NULL, pvv TEXT NOT NULL);
"""

Ref = Annotated[str, Field(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]


class PostingIn(BaseModel):
    idempotency_key: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{8,80}$")]
    session_id: Ref
    business: Ref
    kind: Literal["debit", "credit", "inquiry", "record"]
    account: Ref
    card_masked: Annotated[str, Field(pattern=r"^[0-9]{0,6}\*+[0-9]{0,4}$")]
    amount_fen: Annotated[int, Field(ge=0, le=10**12)] = 0
    currency: Literal["CNY"] = "CNY"
    proofs: dict[str, Any] = Field(default_factory=dict)


class AccountIn(BaseModel):
    account: Ref
    balance_fen: Annotated[int, Field(ge=0)] = 0


class CardIn(BaseModel):
    card_token: Annotated[str, Field(pattern=r"^ct-[0-9a-f]{40}$")]
    account: Ref
    pvv: Annotated[str, Field(pattern=r"^[0-9]{4,12}$")]


class PinCheckIn(BaseModel):
    account: Ref
    ok: bool


class FaultsIn(BaseModel):
    delay_answer_s: Annotated[float, Field(ge=0, le=60)] = 0.0
    count: Annotated[int, Field(ge=0, le=100)] = 1
    fail_before: Annotated[int, Field(ge=0, le=100)] = 0
    hold: bool = False


class Refused(CuntongError):
    """A request the simulated core refuses; answered as ``status`` with ``reason``."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.reason, self.detail = status, reason, detail


class Core:
    """The ledger rules over one SQLite connection (the service runs one event loop)."""

    def __init__(self, db: Path) -> None:
        self.db = sqlite3.connect(db, isolation_level=None)
        self.db.executescript(SCHEMA)
        self.delays: list[float] = []
        self.fail_before = 0
        #: While set, postings wait here (the core hangs); released by clearing the hold.
        self.hold: asyncio.Event | None = None
        self.held = 0

    def account(self, account: str) -> tuple[int, int, int]:
        row = self.db.execute(
            "SELECT balance_fen, pin_failures, locked FROM accounts WHERE account = ?", (account,)
        ).fetchone()
        if row is None:
            raise Refused(404, "account_unknown", f"no account {account!r}")
        return int(row[0]), int(row[1]), int(row[2])

    def post(self, p: PostingIn, now: dt.datetime) -> tuple[dict[str, Any], bool]:
        body_hash = hashlib.sha256(
            json.dumps(p.model_dump(exclude={"idempotency_key"}), sort_keys=True).encode()
        ).hexdigest()
        row = self.db.execute(
            "SELECT reference, body_hash FROM postings WHERE idem_key = ?", (p.idempotency_key,)
        ).fetchone()
        if row is not None:
            if row[1] != body_hash:
                raise Refused(409, "idempotency_conflict", "key reused with other content")
            return {"reference": row[0], "duplicate": True, "status": "applied"}, False
        balance, _failures, locked = self.account(p.account)
        new_pvv = p.proofs.get("new_pvv")
        if new_pvv is not None and not (
            isinstance(new_pvv, str) and new_pvv.isdigit() and 4 <= len(new_pvv) <= 12
        ):
            raise Refused(422, "bad_request", "proofs.new_pvv must be 4 to 12 digits (an offset)")
        if locked and new_pvv is None:  # a PIN reset is how a locked card is opened again
            raise Refused(423, "card_locked", "three wrong PINs locked this card")
        delta = {"debit": -p.amount_fen, "credit": p.amount_fen}.get(p.kind, 0)
        if balance + delta < 0:
            raise Refused(422, "insufficient_funds", "the balance does not cover the debit")
        self.db.execute("BEGIN IMMEDIATE")
        try:
            cur = self.db.execute(
                "INSERT INTO postings (idem_key, reference, body_hash, account, business, kind,"
                " amount_fen, session_id, proofs, created) VALUES (?, '', ?, ?, ?, ?, ?, ?, ?, ?)",
                (p.idempotency_key, body_hash, p.account, p.business, p.kind, p.amount_fen,
                 p.session_id, json.dumps(p.proofs), now.isoformat()),
            )  # fmt: skip
            reference = f"CB{now:%Y%m%d}{cur.lastrowid:08d}"
            self.db.execute(
                "UPDATE postings SET reference = ? WHERE seq = ?", (reference, cur.lastrowid)
            )
            self.db.execute(
                "UPDATE accounts SET balance_fen = balance_fen + ? WHERE account = ?",
                (delta, p.account),
            )
            if new_pvv is not None:  # the new PIN (checked in the HSM) and the lock lifted
                self.db.execute("UPDATE cards SET pvv = ? WHERE account = ?", (new_pvv, p.account))
                self.db.execute(
                    "UPDATE accounts SET pin_failures = 0, locked = 0 WHERE account = ?",
                    (p.account,),
                )
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return {"reference": reference, "duplicate": False, "status": "applied"}, True

    def pin_check(self, account: str, ok: bool) -> dict[str, Any]:
        _balance, failures, locked = self.account(account)
        if locked:
            raise Refused(423, "card_locked", "three wrong PINs locked this card")
        failures = 0 if ok else failures + 1
        locked = int(failures >= PIN_TRIES)
        self.db.execute(
            "UPDATE accounts SET pin_failures = ?, locked = ? WHERE account = ?",
            (failures, locked, account),
        )
        return {"tries_left": PIN_TRIES - failures, "locked": bool(locked)}


def create_app(core: Core, secret: str, faults: bool) -> FastAPI:
    app = FastAPI(title="cuntong core-banking simulator", docs_url=None, redoc_url=None)

    def authorised(authorization: Annotated[str, Header()] = "") -> None:
        if not hmac.compare_digest(authorization.encode(), f"Bearer {secret}".encode()):
            raise Refused(401, "unauthorised", "missing or wrong bearer secret")

    @app.exception_handler(Refused)
    async def refused(_req: Request, err: Refused) -> JSONResponse:
        return JSONResponse({"reason": err.reason, "detail": err.detail}, err.status)

    @app.get("/healthz")
    async def healthz() -> dict[str, bool]:
        return {"ok": True}

    auth = [Depends(authorised)]

    @app.post("/v1/postings", dependencies=auth)
    async def post(p: PostingIn) -> JSONResponse:
        if core.hold is not None:
            core.held += 1
            try:
                await core.hold.wait()  # the core hangs; the client may give up meanwhile
            finally:
                core.held -= 1
        if core.fail_before:
            core.fail_before -= 1
            return JSONResponse({"reason": "unavailable", "detail": "simulated outage"}, 503)
        answer, created = core.post(p, dt.datetime.now(dt.UTC))
        if created and core.delays:
            await asyncio.sleep(core.delays.pop(0))  # committed; the answer comes too late
        return JSONResponse(answer, 201 if created else 200)

    @app.get("/v1/postings/{key}", dependencies=auth)
    async def get_posting(key: str) -> dict[str, Any]:
        row = core.db.execute(
            "SELECT reference FROM postings WHERE idem_key = ?", (key,)
        ).fetchone()
        if row is None:
            raise Refused(404, "not_found", f"no posting with key {key!r}")
        return {"reference": row[0], "status": "applied"}

    @app.post("/v1/accounts", dependencies=auth, status_code=201)
    async def create_account(a: AccountIn) -> dict[str, Any]:
        core.db.execute(
            "INSERT OR REPLACE INTO accounts (account, balance_fen) VALUES (?, ?)",
            (a.account, a.balance_fen),
        )
        return {"account": a.account, "balance_fen": a.balance_fen}

    @app.get("/v1/accounts/{account}", dependencies=auth)
    async def get_account(account: str) -> dict[str, Any]:
        balance, failures, locked = core.account(account)
        (count,) = core.db.execute(
            "SELECT COUNT(*) FROM postings WHERE account = ?", (account,)
        ).fetchone()
        return {"account": account, "balance_fen": balance, "pin_failures": failures,
                "locked": bool(locked), "postings": count}  # fmt: skip

    @app.post("/v1/cards", dependencies=auth, status_code=201)
    async def issue_card(c: CardIn) -> dict[str, Any]:
        core.account(c.account)  # the account must exist
        core.db.execute(
            "INSERT OR REPLACE INTO cards (card_token, account, pvv) VALUES (?, ?, ?)",
            (c.card_token, c.account, c.pvv),
        )
        return {"card_token": c.card_token, "account": c.account}

    @app.get("/v1/cards/{token}", dependencies=auth)
    async def get_card(token: str) -> dict[str, Any]:
        row = core.db.execute(
            "SELECT account, pvv FROM cards WHERE card_token = ?", (token,)
        ).fetchone()
        if row is None:
            raise Refused(404, "card_unknown", "no card with this token")
        _balance, failures, locked = core.account(row[0])
        return {"account": row[0], "pvv": row[1], "locked": bool(locked),
                "tries_left": PIN_TRIES - failures}  # fmt: skip

    @app.post("/v1/pin-checks", dependencies=auth)
    async def pin_check(c: PinCheckIn) -> dict[str, Any]:
        return core.pin_check(c.account, c.ok)

    if faults:

        @app.post("/v1/faults", dependencies=auth)
        async def set_faults(f: FaultsIn) -> dict[str, Any]:
            core.delays = [f.delay_answer_s] * f.count if f.delay_answer_s else []
            core.fail_before = f.fail_before
            if f.hold and core.hold is None:
                core.hold = asyncio.Event()
            elif not f.hold and core.hold is not None:
                core.hold.set()  # the held postings go on, in the order they came
                core.hold = None
            return faults_now()

        @app.get("/v1/faults", dependencies=auth)
        async def get_faults() -> dict[str, Any]:
            return faults_now()

        def faults_now() -> dict[str, Any]:
            return {"delays": core.delays, "fail_before": core.fail_before,
                    "hold": core.hold is not None, "held": core.held}  # fmt: skip

    return app


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="cuntong core-banking simulator")
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret-file", type=Path, required=True)
    parser.add_argument("--faults", action="store_true", help="offer POST /v1/faults (tests)")
    args = parser.parse_args(argv)
    secret = args.secret_file.read_text().strip()
    app = create_app(Core(args.db), secret, args.faults)
    # A fault's held answer (up to 60 s) must not hold a SIGTERM: stop after 2 s regardless.
    uvicorn.run(
        app, host="127.0.0.1", port=args.port, log_level="warning", timeout_graceful_shutdown=2
    )


if __name__ == "__main__":
    main()
