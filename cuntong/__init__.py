"""cuntong (村村通): edge-cloud system for remote video banking on rural self-service terminals.

This package is the launcher, the top layer: the ``cuntong`` command, ``cuntong up`` and the
development server launchers. It may import every other package; nothing imports it.
"""

from common import __version__

__all__ = ["__version__"]
