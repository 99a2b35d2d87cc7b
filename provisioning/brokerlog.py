"""What the broker refused, read from its log (pure): ``RefusalLog.feed(line)``.

Mosquitto 2.0.11's dynamic-security plugin refuses a foreign SUBSCRIBE with SUBACK 0x87
and a foreign PUBLISH with PUBACK 0x87, but reports neither: the plugin has no event for
it, ``$SYS`` has no per-client counter, and at the normal log levels only a *granted*
subscription is logged (``log_type subscribe``: ``<client> <qos> <filter>``). Measured on
2.0.11, with ``log_type debug`` a SUBSCRIBE is logged as::

    Received SUBSCRIBE from SX-1
    \\tcuntong/v1/t/SX-1/cmd/# (QoS 1)
    SX-1 1 cuntong/v1/t/SX-1/cmd/#        <- granted (log_type subscribe)
    \\t$share/ingest/cuntong/v1/t/+/telemetry (QoS 1)
    Sending SUBACK to SX-1                 <- the filter above was refused

and a refused publish as ``Denied PUBLISH from SX-1 (d0, q1, r0, m1, 'topic', ...)``.
A requested filter with no grant line before the next filter or the SUBACK was refused.
The broker is single-threaded, so one SUBSCRIBE's lines are never interleaved with
another's. ``REFUSAL_LOG`` is the config that makes these lines appear; its cost (every
PUBLISH and PUBACK is logged too) is in docs/provisioning.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["REFUSAL_LOG", "Refusal", "RefusalLog"]

#: mosquitto.conf lines that make refusals visible in the log (debug includes them).
REFUSAL_LOG = ("log_type subscribe", "log_type debug")

_STAMP = re.compile(r"^\d+: ")
_FILTER = re.compile(r"^\t(.+) \(QoS \d\)$")
_DENIED = re.compile(r"^Denied PUBLISH from (\S+) \(d\d, q\d, r\d, m\d+, '(.*)', ")


@dataclass(frozen=True, slots=True)
class Refusal:
    client_id: str
    kind: Literal["subscribe", "publish"]
    #: The subscription filter or publish topic that was refused.
    topic: str


@dataclass
class RefusalLog:
    """Feed it the broker's log lines in order; it returns the refusals they show."""

    _client: str | None = None
    _pending: str | None = None
    _done: list[Refusal] = field(default_factory=list)

    def feed(self, line: str) -> list[Refusal]:
        line = _STAMP.sub("", line.rstrip("\r\n"), count=1)
        out: list[Refusal] = []
        if line.startswith("Received SUBSCRIBE from "):
            self._close(out)
            self._client = line.removeprefix("Received SUBSCRIBE from ")
        elif self._client is not None and (m := _FILTER.match(line)):
            self._close_filter(out)
            self._pending = m.group(1)
        elif self._granted(line):
            self._pending = None
        elif line.startswith(("Sending SUBACK to ", "Received UNSUBSCRIBE from ")):
            self._close(out)
        elif m := _DENIED.match(line):
            out.append(Refusal(m.group(1), "publish", m.group(2)))
        return out

    def _granted(self, line: str) -> bool:
        """The ``log_type subscribe`` line granting the pending filter."""
        if self._client is None or self._pending is None:
            return False
        head, _, qos = line.partition(" ")
        qos, _, topic = qos.partition(" ")
        return head == self._client and qos.isdigit() and topic == self._pending

    def _close_filter(self, out: list[Refusal]) -> None:
        if self._client is not None and self._pending is not None:
            out.append(Refusal(self._client, "subscribe", self._pending))
        self._pending = None

    def _close(self, out: list[Refusal]) -> None:
        self._close_filter(out)
        self._client = None
