"""The caller's side of the HSM service (the cloud's, in a later round).

    async with HsmClient(url, secret) as hsm:
        tpk = await hsm.generate_key("TPK:T0001", "TPK", under="TMK:T0001")  # for the pad
        zpk_block = await hsm.translate_pin(block, pan, "TPK:T0001", "ZPK:bank")
        result = await hsm.verify_arqc("IMK-AC:2026", proof)                 # a CardProof

Refusals raise HsmRefused(reason); an unreachable service raises HsmUnavailable. Byte strings
cross the wire as hex. The PAN is sent in clear to this service and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

import httpx

from hsm.errors import HsmRefused, HsmUnavailable


class CardProofLike(Protocol):
    """What `verify_arqc` reads from a card proof (firmware_adapters.iccard.emv.CardProof)."""

    pan: str
    pan_sequence: int | None
    aip: bytes
    atc: int
    cryptogram: bytes
    iad: bytes
    cdol1_data: bytes


@dataclass(frozen=True)
class KeyInfo:
    name: str
    kind: str
    kcv: str
    encrypted: bytes | None = None  # the key under the KEK it was generated under
    under: str | None = None


@dataclass(frozen=True)
class ArqcResult:
    verified: bool
    reason: str  # "" when verified; cryptogram_mismatch or atc_replayed otherwise
    atc: int
    #: The card's token (a keyed hash of PAN and PSN) when verified: the core knows the
    #: card by it, never by its number.
    card_token: str = ""


class HsmClient:
    """An async client; one per caller, reused across commands."""

    def __init__(
        self,
        url: str,
        secret: str,
        timeout: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=url,
            timeout=timeout,
            headers={"Authorization": f"Bearer {secret}"},
            transport=transport,
        )

    async def __aenter__(self) -> HsmClient:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            resp = await self._http.request(method, path, json=body)
        except httpx.HTTPError as err:
            raise HsmUnavailable(f"HSM service: {type(err).__name__}: {err}") from err
        if resp.is_success:
            return resp.json()
        try:
            data = resp.json()
        except ValueError:
            data = {}
        reason = data.get("reason", "bad_request" if resp.status_code < 500 else "hsm_error")
        detail = data.get("detail", resp.text)
        detail = detail if isinstance(detail, str) else str(detail)
        raise HsmRefused(reason, detail, resp.status_code)

    async def keys(self) -> list[KeyInfo]:
        return [KeyInfo(**k) for k in await self._call("GET", "/v1/keys")]

    async def import_key(
        self, name: str, kind: str, components: list[tuple[bytes, bytes]], alg: str = "3DES"
    ) -> KeyInfo:
        """Load a key from its clear components, each with its check value (two custodians)."""
        parts = [{"value": v.hex(), "kcv": kcv.hex()} for v, kcv in components]
        data = await self._call(
            "POST", "/v1/keys/import", {"name": name, "kind": kind, "alg": alg, "components": parts}
        )
        return KeyInfo(**data)

    async def generate_key(
        self, name: str, kind: str, under: str | None = None, alg: str = "3DES"
    ) -> KeyInfo:
        """A fresh key; `under` a TMK also returns it encrypted for the PIN pad to load."""
        data = await self._call(
            "POST", "/v1/keys/generate", {"name": name, "kind": kind, "under": under, "alg": alg}
        )
        enc = data.pop("encrypted")
        return KeyInfo(**data, encrypted=bytes.fromhex(enc) if enc else None)

    async def stage_rotation(self, name: str, under: str) -> KeyInfo:
        """A new TPK for `name`, exported under `under` (its TMK) and kept as `<name>.next`:
        `name` stays the current key until `promote`; PIN blocks under either translate."""
        data = await self._call("POST", "/v1/keys/rotate", {"name": name, "under": under})
        enc = data.pop("encrypted")
        return KeyInfo(**data, encrypted=bytes.fromhex(enc))

    async def pending_kcv(self, name: str) -> str | None:
        """The KCV of the key staged to replace `name`, None when no rotation is in flight."""
        data = await self._call("GET", f"/v1/keys/{name}/pending")
        return data["pending_kcv"]  # type: ignore[no-any-return]

    async def promote(self, name: str) -> KeyInfo:
        """The terminal confirmed: the staged key becomes `name`, the old one is destroyed."""
        return KeyInfo(**await self._call("POST", "/v1/keys/promote", {"name": name}))

    async def discard_rotation(self, name: str) -> bool:
        """The terminal refused (or never answered): drop the staged key, keep `name`."""
        data = await self._call("POST", "/v1/keys/discard", {"name": name})
        return bool(data["discarded"])

    async def translate_pin(
        self, block: bytes, pan: str, source: str, destination: str, fmt: str = "0"
    ) -> bytes:
        """The PIN block re-encrypted from the terminal's key to the zone key (payShield CA)."""
        data = await self._call(
            "POST",
            "/v1/pin/translate",
            {"pin_block": block.hex(), "pan": pan, "source": source,
             "destination": destination, "format": fmt},
        )  # fmt: skip
        return bytes.fromhex(data["pin_block"])

    async def make_pvv(self, block: bytes, pan: str, key: str, pvk: str) -> str:
        """The PIN verification value of the PIN in `block` (the issuer stores it)."""
        body = {"pin_block": block.hex(), "pan": pan, "key": key, "pvk": pvk}
        return str((await self._call("POST", "/v1/pin/pvv", body))["pvv"])

    async def change_pin(
        self, block: bytes, confirmation: bytes, pan: str, key: str, pvk: str
    ) -> str:
        """A new PIN checked against its confirmation inside the HSM; its new PVV."""
        body = {"pin_block": block.hex(), "confirmation_block": confirmation.hex(),
                "pan": pan, "key": key, "pvk": pvk}  # fmt: skip
        return str((await self._call("POST", "/v1/pin/change", body))["pvv"])

    async def verify_pin(self, block: bytes, pan: str, key: str, pvk: str, pvv: str) -> bool:
        body = {"pin_block": block.hex(), "pan": pan, "key": key, "pvk": pvk, "pvv": pvv}
        return bool((await self._call("POST", "/v1/pin/verify", body))["verified"])

    async def verify_arqc(self, imk: str, proof: CardProofLike) -> ArqcResult:
        """Recompute the card's cryptogram from the IMK; refuses an ATC already seen."""
        body = {
            "imk": imk,
            "pan": proof.pan,
            "pan_sequence": proof.pan_sequence,
            "atc": proof.atc,
            "cdol1_data": proof.cdol1_data.hex(),
            "aip": proof.aip.hex(),
            "iad": proof.iad.hex(),
            "arqc": proof.cryptogram.hex(),
        }
        data = await self._call("POST", "/v1/arqc/verify", body)
        return ArqcResult(
            bool(data["verified"]), str(data["reason"]), int(data["atc"]),
            str(data.get("card_token", "")),
        )  # fmt: skip

    async def card_token(self, pan: str, pan_sequence: int | None) -> str:
        """The token the core registers a card under (the issuer's side, at issuance)."""
        body = {"pan": pan, "pan_sequence": pan_sequence}
        return str((await self._call("POST", "/v1/cards/token", body))["card_token"])
