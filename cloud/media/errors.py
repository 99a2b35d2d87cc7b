"""Errors of the cloud's media layer: the Janus client's tree plus the pool's own.

CuntongError
└── MediaError                (janus_client.errors)
    ├── JanusError …          (janus_client.errors)
    ├── NoMediaCapacity       no healthy Janus node has room for another call
    └── RecordingError        a recording could not be turned into a checked file
"""

from __future__ import annotations

from janus_client.errors import (
    JanusError,
    JanusTimeout,
    JanusUnauthorized,
    MediaError,
    VideoRoomError,
)

__all__ = [
    "JanusError",
    "JanusTimeout",
    "JanusUnauthorized",
    "MediaError",
    "NoMediaCapacity",
    "RecordingError",
    "VideoRoomError",
]


class NoMediaCapacity(MediaError):
    """Every Janus node is down, draining or full."""


class RecordingError(MediaError):
    """janus-pp-rec, ffmpeg or ffprobe failed, or the result does not check out."""
