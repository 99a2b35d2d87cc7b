"""The broker's report of a refused SUBSCRIBE (``common.topics.BROKER_REFUSED``).

Written by the refusal plugin in C (``provisioning/broker_plugin/cuntong_refusals.c``)
as one JSON object, read here by ingest::

    {"client_id": "SX-1", "username": "SX-1", "filter": "$share/ingest/...",
     "access": "subscribe"}
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from common.errors import WireError

#: Reports are small (the plugin sends none over 4 KB).
MAX_BYTES = 4096


@dataclass(frozen=True, slots=True)
class BrokerRefusal:
    client_id: str
    username: str
    filter: str
    access: str

    @classmethod
    def parse(cls, payload: bytes) -> BrokerRefusal:
        if len(payload) > MAX_BYTES:
            raise WireError(f"refusal report over {MAX_BYTES} bytes")
        try:
            obj = json.loads(payload)
        except ValueError as err:
            raise WireError(f"refusal report is not JSON: {err}") from err
        if not isinstance(obj, dict):
            raise WireError("refusal report must be a JSON object")
        values = {}
        for key in ("client_id", "username", "filter", "access"):
            value = obj.get(key)
            if not isinstance(value, str):
                raise WireError(f"refusal report without a string {key!r}")
            values[key] = value
        return cls(**values)

    def __bytes__(self) -> bytes:
        return json.dumps(
            {
                "client_id": self.client_id,
                "username": self.username,
                "filter": self.filter,
                "access": self.access,
            }
        ).encode()
