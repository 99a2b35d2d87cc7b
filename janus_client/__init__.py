"""A Janus client both the terminal and the cloud use: the HTTP/long-poll API and VideoRoom.

Imports only ``common``; the cloud's media pool and the terminal's peer sit on it.
"""

#: The modules other packages may use.
__all__ = ["errors", "janus", "videoroom"]
