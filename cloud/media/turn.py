"""Time-limited TURN credentials (the "TURN REST API" scheme coturn's use-auth-secret checks).

username = "<unix expiry>:<user>", password = base64(HMAC-SHA1(secret, username)).
coturn recomputes the HMAC with its static secret and refuses the username once the
expiry has passed, so credentials handed to a terminal or browser need no revocation.
Pure: the current time is an argument.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class TurnCredentials:
    username: str
    password: str
    expires: datetime

    def ice_server(self, urls: list[str]) -> dict[str, object]:
        """An RTCIceServer entry for a browser or aiortc configuration."""
        return {"urls": urls, "username": self.username, "credential": self.password}


def turn_credentials(
    secret: str, user: str, now: datetime, ttl: timedelta = timedelta(hours=1)
) -> TurnCredentials:
    """Credentials for ``user`` valid until ``now + ttl`` (``now`` timezone-aware)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if ":" in user:
        raise ValueError("user must not contain ':' (it separates expiry and user)")
    expires = now + ttl
    username = f"{int(expires.timestamp())}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return TurnCredentials(username, base64.b64encode(digest).decode("ascii"), expires)
