"""The HSM service process: payment-HSM commands over HTTP on loopback.

    SOFTHSM2_CONF=STATE/softhsm2.conf python -m hsm.service --state-dir STATE --port 7700

Protocol: JSON over HTTP on 127.0.0.1 only. Every /v1 request carries
`Authorization: Bearer <secret>`, the secret being the contents of STATE/hsm.secret, a file
the service refuses to use unless it is mode 0600. Byte strings are upper- or lower-case hex.
A refusal answers 4xx/501 with {"reason": ..., "detail": ...}; FastAPI's 422 names a malformed
field. The token's user PIN is read from STATE/token.pin (0600 as well).

Clear PINs and clear key values exist only inside this process and are never logged (the
access log carries paths, never bodies). The card number reaches this process in clear, since
the ARQC derivation needs it; the replay table keeps a keyed hash of it, not the number.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import logging
import sqlite3
import stat
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from hsm import pins
from hsm.errors import HsmError, HsmRefused
from hsm.token import KINDS, PENDING, Token

log = logging.getLogger("hsm.service")

Hex = Annotated[str, Field(pattern=r"^([0-9A-Fa-f]{2})*$", max_length=512)]
Pan = Annotated[str, Field(pattern=r"^[0-9]{13,19}$")]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]
Alg = Literal["3DES", "SM4"]
SM4_LIMIT = (
    "SoftHSM2 has no SM4 mechanism; the SM4 path answers this until a bank HSM with SM4 "
    "is plugged in behind the same command"
)


class Component(BaseModel):
    value: Hex
    kcv: Annotated[str, Field(pattern=r"^[0-9A-Fa-f]{6,16}$")]


class ImportKey(BaseModel):
    name: Name
    kind: str
    alg: Alg = "3DES"
    components: list[Component] = Field(min_length=2, max_length=3)


class GenerateKey(BaseModel):
    name: Name
    kind: str
    alg: Alg = "3DES"
    under: Name | None = None


class Rotate(BaseModel):
    name: Name
    under: Name


class KeyName(BaseModel):
    name: Name


class Translate(BaseModel):
    pin_block: Hex
    pan: Pan
    source: Name
    destination: Name
    format: Literal["0", "S"] = "0"


class PinCheck(BaseModel):
    pin_block: Hex
    pan: Pan
    key: Name
    pvk: Name
    format: Literal["0", "S"] = "0"


class PinChange(PinCheck):
    confirmation_block: Hex


class PinVerify(PinCheck):
    #: The IBM 3624 offset the issuer stored (as many digits as the PIN).
    pvv: Annotated[str, Field(pattern=r"^[0-9]{4,12}$")]


class CardRef(BaseModel):
    pan: Pan
    pan_sequence: Annotated[int, Field(ge=0, le=99)] | None = None


class ArqcVerify(BaseModel):
    imk: Name
    pan: Pan
    pan_sequence: Annotated[int, Field(ge=0, le=99)] | None = None
    atc: Annotated[int, Field(ge=0, le=0xFFFF)]
    cdol1_data: Hex
    aip: Annotated[str, Field(pattern=r"^[0-9A-Fa-f]{4}$")]
    iad: Hex
    arqc: Annotated[str, Field(pattern=r"^[0-9A-Fa-f]{16}$")]


def _private_file(path: Path) -> str:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise HsmError(f"{path} is readable by others (mode {stat.S_IMODE(mode):o}); chmod 600")
    return path.read_text().strip()


def _card_digits(pan: str, pan_sequence: int | None) -> str:
    """Option A's Y: the rightmost 16 digits of PAN ‖ PSN (PSN 00 when absent)."""
    return (pan + f"{pan_sequence or 0:02d}")[-16:].rjust(16, "0")


def _sm4_refused(alg_or_format: str) -> None:
    if alg_or_format in ("SM4", "S"):
        raise HsmRefused("sm4_unsupported", SM4_LIMIT, 501)


class Service:
    """The commands, over a token and the ATC replay table."""

    def __init__(self, token: Token, state_dir: Path, secret: str) -> None:
        self.token = token
        self._secret = secret.encode()
        self._db = sqlite3.connect(state_dir / "atc.sqlite3", isolation_level=None)
        # WAL with synchronous=FULL: each accepted ATC is one append and one fsync of the
        # log (the rollback journal took several), and still durable across a power loss,
        # which a replay table must be: a lost row would let an old cryptogram pass again.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS atc (card TEXT PRIMARY KEY, atc INTEGER)")

    def _clear_pin(self, key: str, block_hex: str, pan: str, fmt: str) -> str:
        _sm4_refused(fmt)
        block = bytes.fromhex(block_hex)
        if len(block) != 8:
            raise HsmRefused("bad_request", "a format 0 PIN block is 8 bytes")
        return pins.decode_format0(self.token.decrypt_pin_block(key, block), pan)

    def _clear_pin_rotating(self, key: str, block_hex: str, pan: str, fmt: str) -> str:
        """As `_clear_pin`; while a TPK rotation is in flight (``<key>.next`` staged), a block
        that does not decrypt under the current key is tried under the staged one: the pad
        may already use the new key before the cloud has recorded its confirmation."""
        try:
            return self._clear_pin(key, block_hex, pan, fmt)
        except HsmRefused as err:
            if err.reason != "pin_block_invalid" or self.token.pending(key) is None:
                raise
            return self._clear_pin(key + PENDING, block_hex, pan, fmt)

    def stage(self, req: Rotate) -> dict[str, str | None]:
        """A new TPK for ``name`` under its TMK, kept as ``<name>.next`` until promoted."""
        if req.name.endswith(PENDING):
            raise HsmRefused("bad_request", f"name the current key, not {req.name!r}")
        try:
            kind = self.token.kind_of(req.name)
        except HsmRefused:
            kind = "TPK"  # no key yet: the first one goes in the same way
        if kind != "TPK":
            raise HsmRefused("key_kind", f"{req.name!r} is a {kind}; only TPKs are rotated")
        stored, exported = self.token.generate(req.name + PENDING, "TPK", req.under)
        assert exported is not None
        return {"name": stored.name, "kind": stored.kind, "kcv": stored.kcv,
                "under": req.under, "encrypted": exported.hex().upper()}  # fmt: skip

    def promote(self, req: KeyName) -> dict[str, str]:
        if self.token.pending(req.name) is None:
            raise HsmRefused("key_unknown", f"no rotation of {req.name!r} in flight", 404)
        stored = self.token.promote(req.name)
        return {"name": stored.name, "kind": stored.kind, "kcv": stored.kcv}

    def translate(self, req: Translate) -> dict[str, str]:
        pin = self._clear_pin_rotating(req.source, req.pin_block, req.pan, req.format)
        out = self.token.encrypt_pin_block(req.destination, pins.encode_format0(pin, req.pan))
        return {"pin_block": out.hex().upper(), "format": "0"}

    def _offset(self, pvk: str, pin: str, pan: str) -> str:
        """The PIN's IBM 3624 offset under ``pvk`` (what the issuer stores as its PVV)."""
        encrypted = self.token.encrypt_validation(pvk, pins.validation_data(pan))
        return pins.pin_offset(pin, pins.natural_pin(encrypted, len(pin)))

    def pvv(self, req: PinCheck) -> dict[str, str]:
        pin = self._clear_pin_rotating(req.key, req.pin_block, req.pan, req.format)
        return {"pvv": self._offset(req.pvk, pin, req.pan)}

    def change(self, req: PinChange) -> dict[str, str]:
        pin = self._clear_pin_rotating(req.key, req.pin_block, req.pan, req.format)
        again = self._clear_pin_rotating(req.key, req.confirmation_block, req.pan, req.format)
        pins.check_new_pin(pin, again)
        return {"pvv": self._offset(req.pvk, pin, req.pan)}

    def verify(self, req: PinVerify) -> dict[str, bool]:
        pin = self._clear_pin_rotating(req.key, req.pin_block, req.pan, req.format)
        offset = self._offset(req.pvk, pin, req.pan)
        return {"verified": hmac.compare_digest(offset, req.pvv)}

    def verify_arqc(self, req: ArqcVerify) -> dict[str, object]:
        iad = bytes.fromhex(req.iad)
        if len(iad) < 7:
            raise HsmRefused("bad_request", "issuer application data without a CVR (bytes 4-7)")
        digits = _card_digits(req.pan, req.pan_sequence)
        mac_input = (
            bytes.fromhex(req.cdol1_data)
            + bytes.fromhex(req.aip)
            + req.atc.to_bytes(2, "big")
            + iad[3:7]
        )
        expected = self.token.arqc(req.imk, bytes.fromhex(digits), req.atc, mac_input)
        if not hmac.compare_digest(expected, bytes.fromhex(req.arqc)):
            return {"verified": False, "reason": "cryptogram_mismatch", "atc": req.atc}
        card = hmac.new(self._secret, digits.encode(), hashlib.sha256).hexdigest()
        # One statement, committed (and fsynced) before the answer: the counter moves only
        # forward, and an ATC at or below the last one accepted changes no row.
        moved = self._db.execute(
            "INSERT INTO atc VALUES (?, ?) ON CONFLICT (card) DO UPDATE SET atc = excluded.atc"
            " WHERE excluded.atc > atc.atc",
            (card, req.atc),
        ).rowcount
        if moved != 1:
            return {"verified": False, "reason": "atc_replayed", "atc": req.atc}
        token = self.card_token(CardRef(pan=req.pan, pan_sequence=req.pan_sequence))
        return {"verified": True, "reason": "", "atc": req.atc, "card_token": token}

    def card_token(self, req: CardRef) -> str:
        """The card's stand-in for everyone but this service: a keyed hash of PAN and PAN
        sequence number. The issuer registers a card in its core under it, and a verified
        ARQC answers it, so the core is asked by token, never by card number."""
        digits = (req.pan + f"{req.pan_sequence or 0:02d}").encode()
        mac = hmac.new(self._secret, b"card-token|" + digits, hashlib.sha256).hexdigest()
        return f"ct-{mac[:40]}"


def create_app(service: Service, secret: str) -> FastAPI:
    app = FastAPI(title="cuntong HSM service", docs_url=None, redoc_url=None, openapi_url=None)

    def authorised(authorization: Annotated[str, Header()] = "") -> None:
        if not hmac.compare_digest(authorization.encode(), f"Bearer {secret}".encode()):
            raise HsmRefused("unauthorised", "missing or wrong bearer secret", 401)

    @app.exception_handler(HsmRefused)
    async def refused(_req: Request, err: HsmRefused) -> JSONResponse:
        return JSONResponse({"reason": err.reason, "detail": err.detail}, err.status)

    @app.exception_handler(ValueError)
    async def bad_hex(_req: Request, err: ValueError) -> JSONResponse:
        return JSONResponse({"reason": "bad_request", "detail": str(err)}, 422)

    @app.get("/healthz")
    async def healthz() -> dict[str, bool]:
        return {"ok": True}

    auth = [Depends(authorised)]
    tok = service.token

    @app.get("/v1/keys", dependencies=auth)
    async def keys() -> list[dict[str, str]]:
        return [{"name": k.name, "kind": k.kind, "kcv": k.kcv} for k in tok.list_keys()]

    @app.post("/v1/keys/import", dependencies=auth, status_code=201)
    async def import_key(req: ImportKey) -> dict[str, str]:
        _sm4_refused(req.alg)
        parts = [(bytes.fromhex(c.value), c.kcv) for c in req.components]
        stored = tok.import_components(req.name, req.kind, parts)
        return {"name": stored.name, "kind": stored.kind, "kcv": stored.kcv}

    @app.post("/v1/keys/generate", dependencies=auth, status_code=201)
    async def generate(req: GenerateKey) -> dict[str, str | None]:
        _sm4_refused(req.alg)
        if req.kind not in KINDS:
            raise HsmRefused("key_kind", f"unknown kind {req.kind!r}; known: {', '.join(KINDS)}")
        if req.kind == "TPK" and req.under is None:
            raise HsmRefused("bad_request", "a TPK is generated under a TMK ('under')")
        stored, exported = tok.generate(req.name, req.kind, req.under)
        return {
            "name": stored.name,
            "kind": stored.kind,
            "kcv": stored.kcv,
            "under": req.under,
            "encrypted": exported.hex().upper() if exported else None,
        }

    @app.get("/v1/keys/{name}/pending", dependencies=auth)
    async def pending(name: str) -> dict[str, str | None]:
        staged = tok.pending(name)
        return {"name": name, "pending_kcv": staged.kcv if staged else None}

    @app.post("/v1/keys/rotate", dependencies=auth, status_code=201)
    async def rotate(req: Rotate) -> dict[str, str | None]:
        return service.stage(req)

    @app.post("/v1/keys/promote", dependencies=auth)
    async def promote(req: KeyName) -> dict[str, str]:
        return service.promote(req)

    @app.post("/v1/keys/discard", dependencies=auth)
    async def discard(req: KeyName) -> dict[str, bool]:
        return {"discarded": tok.discard(req.name)}

    @app.post("/v1/pin/translate", dependencies=auth)
    async def translate(req: Translate) -> dict[str, str]:
        return service.translate(req)

    @app.post("/v1/pin/pvv", dependencies=auth)
    async def pvv(req: PinCheck) -> dict[str, str]:
        return service.pvv(req)

    @app.post("/v1/pin/change", dependencies=auth)
    async def change(req: PinChange) -> dict[str, str]:
        return service.change(req)

    @app.post("/v1/pin/verify", dependencies=auth)
    async def verify(req: PinVerify) -> dict[str, bool]:
        return service.verify(req)

    @app.post("/v1/cards/token", dependencies=auth)
    async def card_token(req: CardRef) -> dict[str, str]:
        return {"card_token": service.card_token(req)}

    @app.post("/v1/arqc/verify", dependencies=auth)
    async def arqc(req: ArqcVerify) -> dict[str, object]:
        return service.verify_arqc(req)

    return app


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="cuntong HSM service")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token-label", default="cuntong")
    parser.add_argument("--module", default="/usr/lib/softhsm/libsofthsm2.so")
    args = parser.parse_args(argv)
    secret = _private_file(args.state_dir / "hsm.secret")
    token = Token(args.token_label, _private_file(args.state_dir / "token.pin"), args.module)
    app = create_app(Service(token, args.state_dir, secret), secret)
    try:
        uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
    finally:
        token.close()


if __name__ == "__main__":
    main()
