"""cuntong (村村通): edge-cloud system for remote video banking on rural self-service terminals.

This package holds what every process shares: the wire protocol (topics, envelopes), the
settings classes, the exception tree, the child-process helpers and the `cuntong` command.
"""

__version__ = "0.1.0"
