"""The project's one exception tree.

    CuntongError
    ├── ConfigError          a setting is missing or invalid; the process refuses to start
    ├── WireError            bytes from the network that do not parse (ValueError too)
    │   └── PayloadTooLarge  a message above the size limit
    ├── SpoolFull            the store-and-forward spool cannot take a business event
    └── MissingBinary        a server program the stack needs is not installed

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
