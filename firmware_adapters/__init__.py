"""Terminal peripherals as async adapters: ID-card reader, PIN pad, bank IC card, camera.

Each device lives in its own sub-package with a pure protocol core (frames, TLV, PIN blocks)
and a thin async adapter around an injected port or reader. Nothing here imports `edge/`,
`fleet/` or `cloud/`: the edge agent builds adapters through `firmware_adapters.registry`.
"""
