"""The project's one exception tree.

    CuntongError
    ├── ConfigError          a setting is missing or invalid; the process refuses to start
    ├── WireError            bytes from the network that do not parse (ValueError too)
    │   └── PayloadTooLarge  a message above the size limit
    ├── SpoolFull            the store-and-forward spool cannot take a business event
    ├── MissingBinary        a server program the stack needs is not installed
    ├── CryptoError          the crypto suite refused (DecryptError: a sealed value is bad)
    └── Refusal              a request refused for a short machine-readable ``reason``
        └── CommandRefused   a cloud → terminal command failed verification

Each package hangs its own branch under CuntongError (provisioning, media, sessions, fleet,
workflow, evidence, vision, adapters …); ``docs/architecture.md`` lists them.

Adapters catch library exceptions (paho, pyserial, pyscard, ...) at their boundary and
re-raise one of these with `raise ... from err`.
"""


class CuntongError(Exception):
    """Root of every error raised by cuntong code."""


class ConfigError(CuntongError):
    """A setting is missing or invalid."""


class WireError(CuntongError, ValueError):
    """Bytes received from the network do not form a valid message."""


class PayloadTooLarge(WireError):
    """A message is larger than the configured limit."""


class SpoolFull(CuntongError):
    """The on-disk spool is at its hard limit and cannot accept a business event."""


class MissingBinary(CuntongError):
    """A server program is not installed; the message says how to get it."""


class CryptoError(CuntongError):
    """The crypto suite refused an operation."""


class DecryptError(CryptoError, ValueError):
    """A sealed value does not decrypt: wrong key, wrong suite, or tampered."""


class Refusal(CuntongError):
    """A refusal with a short machine-readable ``reason`` (answered by APIs, reported by agents)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class CommandRefused(Refusal):
    """A command envelope is expired, replayed, badly signed or not for this terminal."""
