"""The PIN pad's key command on the terminal: load a working key sent by the fleet.

``pinpad_load_working_key`` carries the new PIN key encrypted under the pad's master key and
its check value, never a clear key. The pad decrypts it with the master key in its own slot,
compares the check value and refuses (E6) a key that does not match, keeping the one it had;
the reply carries the pad's KCV of what it loaded, which the cloud compares with the HSM's
before it switches the terminal's key (``fleet.pinkeys``).
"""

from __future__ import annotations

import re
from typing import Any

from edge.commands import Handler
from firmware_adapters.base import Adapter
from firmware_adapters.errors import DeviceStatusError, PeripheralError
from firmware_adapters.pinpad.adapter import PinPad

LOAD = "pinpad_load_working_key"
_HEX = re.compile(r"^(?:[0-9A-Fa-f]{2})+$")


def _hex(args: dict[str, Any], field: str, min_bytes: int, max_bytes: int) -> bytes:
    value = args.get(field)
    if not isinstance(value, str) or not _HEX.match(value):
        raise ValueError(f"{field} must be a hex string")
    raw = bytes.fromhex(value)
    if not min_bytes <= len(raw) <= max_bytes:
        raise ValueError(f"{field} must be {min_bytes} to {max_bytes} bytes, not {len(raw)}")
    return raw


def _slot(args: dict[str, Any], field: str, default: int) -> int:
    value = args.get(field, default)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 9:
        raise ValueError(f"{field} must be a slot number 0-9")
    return value


class PinPadKeys:
    """The key-loading command, over the terminal's configured PIN pad (if any)."""

    def __init__(self, adapters: dict[str, Adapter]) -> None:
        self.pad = next((a for a in adapters.values() if isinstance(a, PinPad)), None)

    def table(self) -> dict[str, Handler]:
        return {LOAD: self.load_working_key}

    async def load_working_key(self, args: dict[str, Any]) -> dict[str, Any]:
        encrypted = _hex(args, "encrypted_key", 16, 32)
        kcv = _hex(args, "kcv", 3, 8)
        master, slot = _slot(args, "master_slot", 0), _slot(args, "slot", 1)
        if master == slot:
            raise ValueError("the working key cannot replace the master key's slot")
        if self.pad is None:
            raise ValueError("no PIN pad is configured on this terminal")
        try:
            loaded = await self.pad.load_working_key(master, slot, encrypted, kcv)
        except DeviceStatusError as err:
            if err.code == "E6":
                raise ValueError(
                    "the PIN pad refused the key: its check value does not match "
                    "(kept the previous key)"
                ) from err
            raise ValueError(f"the PIN pad refused the key: {err}") from err
        except PeripheralError as err:
            raise ValueError(f"the PIN pad did not load the key: {err}") from err
        return {"slot": slot, "kcv": loaded.hex().upper()}
