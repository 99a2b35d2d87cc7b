"""Errors of the teller session core.

CuntongError
└── SessionError            a session or routing operation that the rules refuse
    ├── InvalidTransition   an event the session's current state does not allow
    ├── ClockWentBack       an event stamped earlier than the session's last record
    └── RoutingError        the routing board was asked about an unknown or busy party

A terminal's session message the contract does not allow is a ``common.wire.call.CallError``
(a ``WireError``): the call codec is shared with the terminal.
"""

from __future__ import annotations

from common.errors import CuntongError


class SessionError(CuntongError):
    """A session or routing operation refused by the rules."""


class InvalidTransition(SessionError):
    """The event is not allowed in the session's current state."""

    def __init__(self, session_id: str, state: str, event: str) -> None:
        super().__init__(f"session {session_id}: event {event!r} not allowed in state {state!r}")
        self.session_id = session_id
        self.state = state
        self.event = event


class ClockWentBack(SessionError):
    """An event carries a time before the session's previous transition."""


class RoutingError(SessionError):
    """Unknown teller or request, or an operation that does not fit its current state."""
