"""Blocking door to PC/SC through pyscard's `smartcard.scard`, with typed errors.

Every function here blocks; the adapter calls them through `asyncio.to_thread`. PC/SC return
codes become DeviceAbsent (no pcscd, no reader), CardAbsent (no card, card pulled),
DeviceTimeout, or DeviceStatusError carrying the code.
"""

from __future__ import annotations

from dataclasses import dataclass

from smartcard import scard

from firmware_adapters.errors import CardAbsent, DeviceAbsent, DeviceStatusError, DeviceTimeout


def _u32(code: int) -> int:
    return code & 0xFFFFFFFF


_ABSENT = {
    _u32(c)
    for c in (
        scard.SCARD_E_NO_SERVICE,
        scard.SCARD_E_SERVICE_STOPPED,
        scard.SCARD_E_UNKNOWN_READER,
        scard.SCARD_E_READER_UNAVAILABLE,
        scard.SCARD_E_NO_READERS_AVAILABLE,
        scard.SCARD_E_INVALID_HANDLE,
    )
}
_CARD_GONE = {
    _u32(c)
    for c in (
        scard.SCARD_W_REMOVED_CARD,
        scard.SCARD_E_NO_SMARTCARD,
        scard.SCARD_W_UNPOWERED_CARD,
        scard.SCARD_W_RESET_CARD,
        scard.SCARD_W_UNRESPONSIVE_CARD,
        scard.SCARD_E_NOT_TRANSACTED,  # vpcd's answer when the card vanished mid-APDU
    )
}


def check(hr: int, what: str) -> None:
    """Raise the typed error for a PC/SC return code (nothing on success)."""
    code = _u32(hr)
    if code == _u32(scard.SCARD_S_SUCCESS):
        return
    message = f"{what}: {scard.SCardGetErrorMessage(hr)} ({code:#010x})"
    if code in _ABSENT:
        raise DeviceAbsent(message)
    if code in _CARD_GONE:
        raise CardAbsent(message, code)
    if code == _u32(scard.SCARD_E_TIMEOUT):
        raise DeviceTimeout(message)
    raise DeviceStatusError(message, code)


@dataclass
class Connection:
    handle: int
    protocol: int


class Pcsc:
    """One PC/SC context (one per adapter)."""

    def __init__(self) -> None:
        hr, self.context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        check(hr, "establish context")

    def release(self) -> None:
        scard.SCardReleaseContext(self.context)

    def readers(self) -> list[str]:
        hr, names = scard.SCardListReaders(self.context, [])
        if _u32(hr) == _u32(scard.SCARD_E_NO_READERS_AVAILABLE):
            return []
        check(hr, "list readers")
        return list(names)

    def card_present(self, reader: str, known_state: int, wait_ms: int) -> tuple[bool, int]:
        """(card present?, new state) once the state differs from `known_state` or on timeout."""
        hr, states = scard.SCardGetStatusChange(self.context, wait_ms, [(reader, known_state)])
        if _u32(hr) == _u32(scard.SCARD_E_TIMEOUT):
            return bool(known_state & scard.SCARD_STATE_PRESENT), known_state
        check(hr, f"status of {reader}")
        _name, state, _atr = states[0]
        if state & scard.SCARD_STATE_UNKNOWN:
            raise DeviceAbsent(f"reader {reader} is gone")
        return bool(state & scard.SCARD_STATE_PRESENT), state & ~scard.SCARD_STATE_CHANGED

    def connect(self, reader: str) -> Connection:
        hr, handle, protocol = scard.SCardConnect(
            self.context,
            reader,
            scard.SCARD_SHARE_SHARED,
            scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1,
        )
        check(hr, f"connect to {reader}")
        return Connection(handle, protocol)

    def transmit(self, conn: Connection, command: bytes) -> bytes:
        hr, response = scard.SCardTransmit(conn.handle, conn.protocol, list(command))
        check(hr, "transmit")
        return bytes(response)

    def disconnect(self, conn: Connection) -> None:
        scard.SCardDisconnect(conn.handle, scard.SCARD_LEAVE_CARD)
