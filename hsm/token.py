"""The PKCS#11 side of the HSM service: key objects in the token and the operations on them.

Every key is a token object labelled with its name, sensitive and non-extractable, so no
PKCS#11 call can read its value back. What SoftHSM2 (2.6) cannot do, and what is done instead:

- it has no SM4 mechanism: SM4 keys and the SM4 PIN block are refused (`sm4_unsupported`);
- its C_WrapKey has no 3DES-ECB wrap, which the PIN pad's key load expects: a working key is
  drawn from the OS random source inside this process, created in the token as
  non-extractable, and encrypted under the key-encryption key with C_Encrypt; the clear value
  is dropped at once. Key components are XORed in this process the same way;
- python-pkcs11 has no typed parameter for CKM_DES3_ECB_ENCRYPT_DATA: the
  CK_KEY_DERIVATION_STRING_DATA structure is packed here (`_derivation_param`).

Card keys for the ARQC are derived inside the token (CKM_DES3_ECB_ENCRYPT_DATA) as session
objects and destroyed after each verification. Not thread-safe: the service calls it from one
event loop.
"""

from __future__ import annotations

import ctypes
import os
import struct
from dataclasses import dataclass
from typing import Any

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.constants import DEFAULT

from hsm.errors import HsmError, HsmRefused

MODULE = "/usr/lib/softhsm/libsofthsm2.so"

#: key kind -> what it is for (the usages are enforced by this service's commands)
KINDS: dict[str, str] = {
    "TMK": "terminal master key: the PIN pad's key-encryption key, loaded by two components",
    "TPK": "terminal PIN key: the PIN pad's working key, encrypted under the TMK",
    "ZPK": "zone PIN key: shared with the bank's host; PIN blocks are translated to it",
    "PVK": "PIN verification key: makes and checks PIN verification values",
    "IMK-AC": "issuer master key for application cryptograms (card keys derive from it)",
}
#: kinds that may encrypt another key for export
KEK_KINDS = {"TMK"}
#: A working key being rotated in waits under ``<name>.next`` until the terminal confirms it
#: loaded it; the key under ``<name>`` stays current until then.
PENDING = ".next"


def _odd_parity(key: bytes) -> bytes:
    return bytes((b & 0xFE) | ((bin(b >> 1).count("1") + 1) % 2) for b in key)


def _derivation_param(data: bytes) -> tuple[Any, bytes]:
    """CK_KEY_DERIVATION_STRING_DATA {pData, ulLen} as raw bytes; keep the buffer alive."""
    buf = ctypes.create_string_buffer(data, len(data))
    return buf, struct.pack("PL", ctypes.addressof(buf), len(data))


@dataclass(frozen=True)
class StoredKey:
    name: str
    kind: str
    kcv: str


class Token:
    """A logged-in read-write session on one token."""

    def __init__(self, label: str, pin: str, module: str = MODULE) -> None:
        try:
            lib = pkcs11.lib(module)
            self._session = lib.get_token(token_label=label).open(user_pin=pin, rw=True)
        except pkcs11.PKCS11Error as err:
            raise HsmError(f"cannot open token {label!r}: {type(err).__name__}") from err
        #: name -> key handle, name -> kind: one find per key, not one per command
        self._keys: dict[str, Any] = {}
        self._kinds: dict[str, str] = {}

    def close(self) -> None:
        self._session.close()

    # ---- key store ---------------------------------------------------------------------------

    def _find(self, name: str) -> Any:
        if name not in self._keys:
            found = list(
                self._session.get_objects(
                    {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: name}
                )
            )
            if not found:
                raise HsmRefused("key_unknown", f"no key named {name!r}", 404)
            self._keys[name] = found[0]
        return self._keys[name]

    def kind_of(self, name: str) -> str:
        # A key's kind (CKA_ID) is fixed at creation; cached with its handle, and dropped
        # with it wherever a key of that name is replaced (store, promote, discard).
        if name not in self._kinds:
            self._kinds[name] = bytes(self._find(name)[Attribute.ID]).decode()
        return self._kinds[name]

    def _forget(self, name: str) -> None:
        self._keys.pop(name, None)
        self._kinds.pop(name, None)

    def _need(self, name: str, *kinds: str) -> Any:
        key = self._find(name)
        kind = self.kind_of(name)
        if kind not in kinds:
            raise HsmRefused("key_kind", f"{name!r} is a {kind}, this needs {'/'.join(kinds)}")
        return key

    def list_keys(self) -> list[StoredKey]:
        out = []
        # materialised first: a find still running blocks every other operation (OperationActive)
        for obj in list(self._session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY})):
            name = obj[Attribute.LABEL]
            out.append(StoredKey(name, bytes(obj[Attribute.ID]).decode(), self.kcv(name)))
        return sorted(out, key=lambda k: k.name)

    def kcv(self, name: str) -> str:
        """First 3 bytes of the key encrypting a zero block, as banks print on key slips."""
        return self._ecb(self._find(name), bytes(8))[:3].hex().upper()

    def _store(self, name: str, kind: str, value: bytes) -> StoredKey:
        if kind not in KINDS:
            raise HsmRefused("key_kind", f"unknown kind {kind!r}; known: {', '.join(KINDS)}")
        if len(value) != 16:
            raise HsmRefused("bad_request", "keys are double-length 3DES (16 bytes)")
        for old in list(self._session.get_objects({Attribute.LABEL: name})):
            old.destroy()  # a rotation replaces the key of that name
        self._forget(name)
        self._keys[name] = self._session.create_object(
            {
                Attribute.CLASS: ObjectClass.SECRET_KEY,
                Attribute.KEY_TYPE: KeyType.DES2,
                Attribute.VALUE: _odd_parity(value),
                Attribute.LABEL: name,
                Attribute.ID: kind.encode(),
                Attribute.TOKEN: True,
                Attribute.PRIVATE: True,
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
                Attribute.ENCRYPT: True,
                Attribute.DECRYPT: kind in ("TPK", "ZPK"),
                Attribute.DERIVE: kind == "IMK-AC",
            }
        )
        return StoredKey(name, kind, self.kcv(name))

    def import_components(self, name: str, kind: str, parts: list[tuple[bytes, str]]) -> StoredKey:
        """XOR two or three clear components, each checked against its KCV, into one key."""
        if len(parts) < 2:
            raise HsmRefused("bad_request", "a key is loaded from at least two components")
        value = bytes(16)
        for i, (part, kcv) in enumerate(parts, 1):
            if len(part) != 16:
                raise HsmRefused("bad_request", f"component {i} is not 16 bytes")
            if _kcv_clear(part)[: len(kcv) // 2].hex().upper() != kcv.upper():
                raise HsmRefused("kcv_mismatch", f"component {i} does not match its check value")
            value = bytes(a ^ b for a, b in zip(value, part, strict=True))
        return self._store(name, kind, value)

    def generate(self, name: str, kind: str, under: str | None) -> tuple[StoredKey, bytes | None]:
        """A fresh random key; with `under`, also its value encrypted under that KEK (ECB)."""
        kek = self._need(under, *KEK_KINDS) if under else None
        value = _odd_parity(os.urandom(16))
        exported = self._ecb(kek, value) if kek is not None else None
        stored = self._store(name, kind, value)
        del value
        return stored, exported

    def pending(self, name: str) -> StoredKey | None:
        """The key staged to replace ``name`` (None when no rotation is in flight)."""
        staged = name + PENDING
        try:
            return StoredKey(staged, self.kind_of(staged), self.kcv(staged))
        except HsmRefused:
            return None

    def promote(self, name: str) -> StoredKey:
        """The staged key becomes ``name``; the key it replaces is destroyed."""
        staged = self._find(name + PENDING)
        for old in list(self._session.get_objects({Attribute.LABEL: name})):
            old.destroy()
        self._forget(name)
        staged[Attribute.LABEL] = name  # CKA_LABEL is modifiable (PKCS#11 v2.40, 4.4)
        self._forget(name + PENDING)
        self._keys[name] = staged
        return StoredKey(name, self.kind_of(name), self.kcv(name))

    def discard(self, name: str) -> bool:
        """Drop the key staged for ``name``, if any (the terminal refused or never answered)."""
        found = list(self._session.get_objects({Attribute.LABEL: name + PENDING}))
        for obj in found:
            obj.destroy()
        self._forget(name + PENDING)
        return bool(found)

    # ---- ciphers -----------------------------------------------------------------------------

    def _ecb(self, key: Any, data: bytes) -> bytes:
        return bytes(key.encrypt(data, mechanism=Mechanism.DES3_ECB))

    def decrypt_pin_block(self, key_name: str, block: bytes) -> bytes:
        key = self._need(key_name, "TPK", "ZPK")
        return bytes(key.decrypt(block, mechanism=Mechanism.DES3_ECB))

    def encrypt_pin_block(self, key_name: str, clear: bytes) -> bytes:
        return self._ecb(self._need(key_name, "ZPK", "TPK"), clear)

    def encrypt_validation(self, pvk_name: str, validation_data: bytes) -> bytes:
        """3DES_PVK(validation data): what the IBM 3624 natural PIN is decimalised from."""
        return self._ecb(self._need(pvk_name, "PVK"), validation_data)

    def _derive(self, key: Any, data: bytes) -> Any:
        _buf, param = _derivation_param(data)
        return key.derive_key(
            KeyType.DES2,
            128,
            mechanism=Mechanism.DES3_ECB_ENCRYPT_DATA,
            mechanism_param=param,
            template={
                Attribute.VALUE_LEN: DEFAULT,  # fixed by the key type; SoftHSM2 refuses it
                Attribute.TOKEN: False,
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
                Attribute.ENCRYPT: True,
                Attribute.DERIVE: True,
            },
        )

    def arqc(self, imk_name: str, y: bytes, atc: int, mac_input: bytes) -> bytes:
        """Recompute the card's cryptogram inside the token (EMV Book 2 A1.3, A1.4, Option A).

        MAC algorithm 3 is single DES with the left key half over all blocks, then 3DES on the
        last: H = CBC_{KL}(blocks 1..n-1), AC = 3DES_SK(H xor block n). KL as a PKCS#11 key is
        the session key derived a second time with the left input twice (KL ‖ KL).
        """
        imk = self._need(imk_name, "IMK-AC")
        r = atc.to_bytes(2, "big")
        left, right = r + b"\xf0" + bytes(5), r + b"\x0f" + bytes(5)
        temp = []
        try:
            mk = self._derive(imk, y + bytes(b ^ 0xFF for b in y))
            temp.append(mk)
            sk = self._derive(mk, left + right)
            temp.append(sk)
            kl = self._derive(mk, left + left)
            temp.append(kl)
            padded = mac_input + b"\x80" + bytes(-(len(mac_input) + 1) % 8)
            h = bytes(8)
            if len(padded) > 8:
                chain = kl.encrypt(padded[:-8], mechanism=Mechanism.DES3_CBC, mechanism_param=h)
                h = bytes(chain)[-8:]
            return self._ecb(sk, bytes(a ^ b for a, b in zip(h, padded[-8:], strict=True)))
        finally:
            for key in temp:
                key.destroy()


def _kcv_clear(value: bytes) -> bytes:
    """KCV of a clear component, computed before it goes anywhere near the token."""
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
    from cryptography.hazmat.primitives.ciphers import Cipher, modes

    enc = Cipher(TripleDES(value + value[:8]), modes.ECB()).encryptor()
    return enc.update(bytes(8)) + enc.finalize()
