"""What every cuntong process shares: the bottom layer.

Errors, topics and envelopes, the settings classes, backoff, the periodic-task loop, the MQTT
link, child-process helpers, the crypto suite and the wire formats two processes share
(``common.wire``). It imports
no other project package; ``docs/architecture.md`` draws the layers above it.
"""

__version__ = "0.1.0"
