"""The peripherals' exception tree (one branch of `common.errors.CuntongError`).

    PeripheralError
    ├── DeviceAbsent        the port / reader / camera is not there (unplugged, wrong path)
    ├── DeviceTimeout       the device did not answer in time
    ├── FrameError          bytes that do not form a valid frame (also WireError, ValueError)
    │   ├── FrameTruncated  the frame ended before its declared length
    │   ├── FrameChecksum   the checksum does not match
    │   ├── FrameOversized  a declared length above the protocol's limit
    │   └── FieldInvalid    framing fine, content not (bad date, ID check digit wrong)
    ├── DeviceStatusError   a well-formed answer carrying an error status (typed code inside)
    ├── CardAbsent          no card in the reader (or the card was pulled mid-read)
    └── EntryCancelled      the customer cancelled PIN entry on the pad

Adapters catch pyserial / pyscard / PyAV exceptions at their boundary and re-raise one of
these with `raise ... from err`; the adapter stays usable and counts the fault.
"""

from __future__ import annotations

from common.errors import CuntongError, WireError


class PeripheralError(CuntongError):
    """Root of every error a peripheral adapter raises."""


class DeviceAbsent(PeripheralError):
    """The device is not connected or cannot be opened."""


class DeviceTimeout(PeripheralError, TimeoutError):
    """The device did not answer within the deadline."""


class FrameError(PeripheralError, WireError):
    """Bytes from the device do not form a valid frame."""


class FrameTruncated(FrameError):
    """The frame is shorter than its header says."""


class FrameChecksum(FrameError):
    """The frame's checksum is wrong."""


class FrameOversized(FrameError):
    """The frame declares a length above the protocol's maximum."""


class DeviceStatusError(PeripheralError):
    """The device answered with an error status; `code` holds the raw status."""

    def __init__(self, message: str, code: int | str) -> None:
        super().__init__(message)
        self.code = code


class CardAbsent(PeripheralError):
    """No card is present, or it was removed during the operation (a customer action)."""

    def __init__(self, message: str, code: int | str | None = None) -> None:
        super().__init__(message)
        self.code = code


class FieldInvalid(FrameError):
    """A well-framed answer whose content is invalid (bad date, wrong ID check digit)."""


class EntryCancelled(PeripheralError):
    """The customer pressed cancel (or the host cancelled) during PIN entry."""
