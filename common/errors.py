"""The project's one exception tree: every error cuntong raises is a ``CuntongError``.

    CuntongError
    ├── ConfigError              a setting is missing or invalid; the process refuses to start
    │   └── CatalogueError       cloud.workflow: the business catalogue does not load (ValueError)
    ├── WireError                bytes from the network that do not parse (ValueError too)
    │   ├── PayloadTooLarge      a message above the size limit
    │   ├── CallError            common.wire.call: a call signalling message off the contract
    │   ├── BadChannelMessage    common.wire.datachannel: data-channel text off the contract
    │   └── FrameError           firmware_adapters: a serial frame (truncated, checksum, …)
    ├── SpoolFull                the store-and-forward spool cannot take a business event
    ├── MissingBinary            a server program the stack needs is not installed
    ├── CryptoError              the crypto suite refused
    │   └── DecryptError         a sealed value is bad (ValueError)
    ├── PackageExists            a write-once package is already in place: an OTA version
    │                            already published (fleet), a session's evidence package
    │                            already sealed (cloud.evidence); never overwritten (ValueError)
    ├── Refusal                  a request refused for a short machine-readable ``reason``
    │   ├── CommandRefused       a cloud → terminal command failed verification
    │   ├── PackageRefused       common.wire.package: an OTA manifest or payload not to
    │   │                        install (ValueError)
    │   ├── UploadRefused        common.wire.log_upload: a log-upload manifest or chunk the
    │   │                        cloud will not take (ValueError)
    │   └── ClaimRefused, EnrolmentRefused   provisioning (also ProvisioningError)
    │
    │   package branches, each drawn in its own errors module:
    ├── ProvisioningError        provisioning.errors
    ├── IdCheckError             idcheck.errors (service down; RequestRefused, also a Refusal;
    │                            AnswerInvalid, also a WireError)
    ├── PeripheralError          firmware_adapters.errors (device absent, timeout, frames …)
    ├── MediaError               janus_client.errors (JanusError …), cloud.media.errors
    ├── HsmError                 hsm.errors (HsmRefused, also a Refusal; HsmUnavailable)
    ├── CoreBankError            corebank.errors (CoreRefused, also a Refusal; CorePending);
    │                            the core simulator's own refusals are corebank.simulator.Refused
    ├── ModelError               models.errors (manifest, bundle, refused, unhealthy);
    │   └── UnsupportedModel     modeltools.build.tflite_onnx (ValueError)
    ├── VisionError              edge.vision.errors (BadFrame)
    ├── HttpError                edge.teller.screen: a request the customer screen answers
    │                            with a 4xx (ValueError)
    ├── AuthError                cloud.auth.errors
    ├── SessionError             cloud.sessions.errors (transitions, clock, routing)
    ├── WorkflowError            cloud.workflow.errors (ValueError)
    ├── EvidenceError            cloud.evidence.errors (format, retention, sealer, captured files)
    ├── QualityError             cloud.quality.service (ReviewConflict, ValueError)
    ├── FleetError               fleet.errors (TransitionError ValueError, GroupNotFound
    │                            LookupError)
    └── LeaseLost                a leader's write refused: the lease changed hands
                                 (``cloud.lease.fenced``; re-exported there)

Where an error is also a ``ValueError`` (or ``LookupError``), callers written against the
built-in keep working. Adapters catch library exceptions (paho, pyserial, pyscard, ...) at
their boundary and re-raise one of these with ``raise ... from err``.
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


class PackageExists(CuntongError, ValueError):
    """A write-once package (an OTA version, a session's evidence package) already exists."""


class Refusal(CuntongError):
    """A refusal with a short machine-readable ``reason`` (answered by APIs, reported by agents)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class LeaseLost(CuntongError):
    """This replica no longer holds the lease it acted under: the write was not made
    (``cloud.lease.fenced``). Here, not in ``cloud.lease``, so ``common.periodic`` can tell a
    refused beat from a failed one."""


class CommandRefused(Refusal):
    """A command envelope is expired, replayed, badly signed or not for this terminal."""
