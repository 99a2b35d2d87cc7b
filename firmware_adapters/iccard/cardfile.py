"""An emulated card kept in a file, so a demo's card survives a restart of its emulator.

The file (JSON, mode 0600) holds what a personalised card holds: PAN, PAN sequence number,
the card's own AC master key (derived from the issuer's key at personalisation; the issuer's
key itself is never written) and the last ATC used. ``PersistentCard`` writes the ATC back
after each GENERATE AC, before it answers, so a restarted emulator never offers the issuer a
counter it has seen (the HSM refuses a replayed ATC).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from firmware_adapters.errors import FieldInvalid
from firmware_adapters.iccard import cryptogram
from firmware_adapters.iccard.card import CardProfile, PbocCard


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def card_key(profile: CardProfile) -> bytes:
    """The card's AC master key: its own, or derived from the issuer's key (Option A)."""
    if profile.ac_key is not None:
        return profile.ac_key
    return cryptogram.card_master_key(profile.imk, profile.pan, profile.pan_sequence)


def write_card(path: Path, profile: CardProfile) -> None:
    """Personalise: the card's data and its derived key into ``path`` (0600)."""
    body = {
        "pan": profile.pan,
        "pan_sequence": profile.pan_sequence,
        "expiry": profile.expiry,
        "name": profile.name,
        "ac_key": card_key(profile).hex().upper(),
        "atc": profile.atc,
    }
    _write_private(path, json.dumps(body, indent=2).encode())


def read_card(path: Path) -> CardProfile:
    """The card in ``path``; FieldInvalid names what is missing or malformed."""
    try:
        body = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise FieldInvalid(f"card file {path}: {err}") from err
    try:
        pan, atc = str(body["pan"]), int(body["atc"])
        key = bytes.fromhex(str(body["ac_key"]))
        psn = int(body.get("pan_sequence", 1))
    except (KeyError, TypeError, ValueError) as err:
        raise FieldInvalid(f"card file {path}: missing or malformed {err}") from err
    if not pan.isdigit() or len(key) != 16 or not 0 <= atc < 0xFFFF:
        raise FieldInvalid(f"card file {path}: pan, ac_key (16 bytes) or atc out of range")
    return CardProfile(
        pan=pan,
        pan_sequence=psn,
        expiry=str(body.get("expiry", CardProfile.expiry)),
        name=str(body.get("name", CardProfile.name)),
        ac_key=key,
        atc=atc,
    )


class PersistentCard(PbocCard):
    """A ``PbocCard`` whose ATC is written back to its file before each answer that used it."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        super().__init__(read_card(self.path))

    def respond(self, command: bytes) -> bytes:
        before = self.atc
        reply = super().respond(command)
        if self.atc != before:
            self.profile.atc = self.atc
            write_card(self.path, self.profile)
        return reply
