"""Device identity and zero-touch provisioning: CA, claims, enrolment, mTLS broker config,
rotation, revocation, signed commands and the crypto-suite switch.

See docs/provisioning.md. The agent imports ``provisioning.device`` and
``common.wire.commands``; the cloud ``provisioning.api``, ``provisioning.admin_api`` and
``provisioning.wiring`` (``provisioning.fanout`` for several brokers); the stack
``provisioning.wiring.secure_broker``.
"""

#: The modules other packages may use. Internal: ``broker`` (the launcher writes the broker's
#: files through ``wiring``), ``claims``, ``models``, ``cli`` and ``cli_actions``.
__all__ = [
    "admin_api",
    "api",
    "brokerlog",
    "ca",
    "device",
    "dynsec",
    "errors",
    "fanout",
    "files",
    "keys",
    "protocol",
    "revocation",
    "service",
    "wiring",
]
