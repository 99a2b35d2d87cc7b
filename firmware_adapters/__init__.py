"""Terminal peripherals as async adapters: ID-card reader, PIN pad, bank IC card, camera.

Each device lives in its own sub-package with a pure protocol core (frames, TLV, PIN blocks)
and a thin async adapter around an injected port or reader. Nothing here imports `edge/`,
`fleet/` or `cloud/`: the edge agent builds adapters through `firmware_adapters.registry`.
"""

#: The modules other packages may use: the adapter base, the registry that builds adapters
#: from configuration, the errors, and each device's library. Internal: the serial link, the pty
#: server, the self-test and the CLI.
__all__ = ["base", "camera", "errors", "iccard", "idcard", "masking", "pinpad", "registry"]
