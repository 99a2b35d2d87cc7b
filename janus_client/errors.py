"""Errors of the Janus client.

CuntongError
└── MediaError
    ├── JanusError            Janus answered ``"janus": "error"`` or could not be reached
    │   ├── JanusUnauthorized wrong or missing token / admin secret (Janus code 403)
    │   ├── JanusTimeout      an asynchronous answer (e.g. the SDP answer) did not come
    │   └── VideoRoomError    the VideoRoom plugin refused a request (its error_code)
    └── (the cloud's media pool adds NoMediaCapacity and RecordingError: cloud.media.errors)
"""

from __future__ import annotations

from common.errors import CuntongError


class MediaError(CuntongError):
    """Root of the media layer's errors."""


class JanusError(MediaError):
    """Janus refused a request or could not be reached."""

    def __init__(self, reason: str, code: int | None = None) -> None:
        super().__init__(f"janus error {code}: {reason}" if code is not None else reason)
        self.code = code
        self.reason = reason


class JanusUnauthorized(JanusError):
    """Wrong or missing token or admin secret."""


class JanusTimeout(JanusError):
    """An event Janus should have sent (SDP answer, plugin reply) did not arrive in time."""


class VideoRoomError(JanusError):
    """The VideoRoom plugin answered with an error_code (e.g. 426 no such room)."""
