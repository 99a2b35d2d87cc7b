"""Fleet operations: registry and groups, shadows, commands, rollouts, OTA and alerts.

Pure state machines live in ``fleet/*.py`` (no I/O, time is an argument); the tortoise
models in ``fleet.models``; the routers in ``fleet.api``; the MQTT command sender in
``fleet.sender``.
"""

#: What other packages may use: ``wiring`` (the launcher plugs it into the cloud app as an
#: ``Extension``).
__all__ = ["wiring"]
