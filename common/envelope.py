"""Message envelopes on the wire: terminal → cloud telemetry, events and status.

Pure code: bytes in, typed values out, and back. ``parse_*`` raise ``WireError`` (a
``ValueError``) with a reason a log reader can act on. Every encoder round-trips with its
parser.

The envelope carries a per-terminal sequence number assigned when the message enters the
terminal's spool; the cloud uses ``(terminal_id, seq)`` to drop the duplicates that QoS 1
redelivery and spool replays can produce.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from common.errors import PayloadTooLarge, WireError

ENVELOPE_VERSION: Final = 1
MAX_PAYLOAD_BYTES: Final = 16 * 1024

#: Numeric health fields a terminal reports, with the range a sane value falls in.
#: A value outside its range marks the whole sample invalid rather than storing nonsense.
TELEMETRY_FIELDS: Final[dict[str, tuple[float, float]]] = {
    "cpu_pct": (0.0, 100.0),
    "mem_pct": (0.0, 100.0),
    "agent_rss_mb": (0.0, 65536.0),
    "disk_pct": (0.0, 100.0),
    "temp_c": (-50.0, 150.0),
    "rtt_ms": (0.0, 600_000.0),
    "uptime_s": (0.0, 1e10),
    "spool_depth": (0.0, 1e9),
    # Alarms (edge.alarms): counts within a recent window, and the last reconnect wait.
    "spool_refused": (0.0, 1e9),
    "link_flaps": (0.0, 1e9),
    "link_backoff_s": (0.0, 86_400.0),
}

PERIPHERAL_STATES: Final = frozenset({"ok", "degraded", "fault", "absent"})

#: Peripheral names become series names in the telemetry store (``peripheral_<name>``), so
#: they are held to what a series name may safely be: no spaces, commas, quotes or newlines
#: that line protocol or PromQL would read as syntax.
PERIPHERAL_NAME: Final = re.compile(r"[a-z][a-z0-9_]{0,31}")

#: Sequence numbers are stored in signed 64-bit columns.
MAX_SEQ: Final = 2**63 - 1
#: The last millisecond a timestamp column can hold (9999-12-31T23:59:59.999Z). Whether a
#: timestamp is *plausible* depends on when it arrived: the ingest consumer judges that.
MAX_TS_MS: Final = 253_402_300_799_999


@dataclass(frozen=True, slots=True)
class Telemetry:
    terminal_id: str
    seq: int
    ts_ms: int
    metrics: dict[str, float]
    peripherals: dict[str, str]
    versions: dict[str, str]
    #: Fault count per peripheral since the agent started (absent for simulated devices).
    faults: dict[str, int] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        body: dict[str, Any] = {
            "metrics": self.metrics,
            "peripherals": self.peripherals,
            "versions": self.versions,
        }
        if self.faults:
            body["peripheral_faults"] = self.faults
        return _dump(
            {
                "v": ENVELOPE_VERSION,
                "kind": "telemetry",
                "tid": self.terminal_id,
                "seq": self.seq,
                "ts": self.ts_ms,
                "body": body,
            }
        )


@dataclass(frozen=True, slots=True)
class Event:
    """A business event (card inserted, session requested, ...). Never dropped by the spool."""

    terminal_id: str
    seq: int
    ts_ms: int
    type: str
    data: dict[str, Any]

    def to_bytes(self) -> bytes:
        return _dump(
            {
                "v": ENVELOPE_VERSION,
                "kind": "event",
                "tid": self.terminal_id,
                "seq": self.seq,
                "ts": self.ts_ms,
                "body": {"type": self.type, "data": self.data},
            }
        )


@dataclass(frozen=True, slots=True)
class Status:
    """Retained presence. The broker publishes the offline form as the terminal's last will."""

    terminal_id: str
    online: bool
    ts_ms: int
    versions: dict[str, str]
    region: dict[str, str]
    hw_model: str

    def to_bytes(self) -> bytes:
        return _dump(
            {
                "v": ENVELOPE_VERSION,
                "kind": "status",
                "tid": self.terminal_id,
                "online": self.online,
                "ts": self.ts_ms,
                "versions": self.versions,
                "region": self.region,
                "hw_model": self.hw_model,
            }
        )


def _dump(obj: dict[str, Any]) -> bytes:
    return orjson.dumps(obj)


def json_object(payload: bytes, limit: int) -> dict[str, Any]:
    """A size-checked JSON object from the network (any of our wire formats); WireError
    (PayloadTooLarge for the size) on anything else."""
    if len(payload) > limit:
        raise PayloadTooLarge(f"payload of {len(payload)} bytes exceeds {limit}")
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError as err:  # also raised for invalid UTF-8
        raise WireError(f"not JSON: {err}") from err
    if not isinstance(obj, dict):
        raise WireError("not a JSON object")
    return obj


def _load(payload: bytes, limit: int) -> dict[str, Any]:
    obj = json_object(payload, limit)
    if obj.get("v") != ENVELOPE_VERSION:
        raise WireError(f"unsupported envelope version {obj.get('v')!r}")
    return obj


def _int(obj: dict[str, Any], key: str, minimum: int, maximum: int) -> int:
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
        raise WireError(f"field {key!r} must be an integer in [{minimum}, {maximum}]")
    return value


def _seq(obj: dict[str, Any]) -> int:
    return _int(obj, "seq", 1, MAX_SEQ)


def salvage_seq(payload: bytes, limit: int) -> int | None:
    """The sequence number a message that failed to parse still carries, or None.

    A terminal's spool numbers every message it sends and keeps it until the cloud confirms
    that number, so a message the cloud keeps aside (dead-lettered) must still be confirmed
    or the terminal sends it forever. Reads ``seq`` from any JSON object of at most
    ``limit`` bytes (oversized ones included), whatever else is wrong with it."""
    if len(payload) > limit:
        return None
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    try:
        return _seq(obj)
    except WireError:
        return None


def _ts(obj: dict[str, Any]) -> int:
    return _int(obj, "ts", 0, MAX_TS_MS)


def _str_map(value: Any, what: str, max_items: int = 32) -> dict[str, str]:
    if not isinstance(value, dict) or len(value) > max_items:
        raise WireError(f"{what} must be an object of at most {max_items} entries")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise WireError(f"{what} must map strings to strings")
    return value


def _envelope(obj: dict[str, Any], kind: str, terminal_id: str | None) -> str:
    if obj.get("kind") != kind:
        raise WireError(f"expected kind {kind!r}, got {obj.get('kind')!r}")
    tid = obj.get("tid")
    if not isinstance(tid, str):
        raise WireError("field 'tid' must be a string")
    # The topic names the terminal the broker authenticated; a body claiming another is forged.
    if terminal_id is not None and tid != terminal_id:
        raise WireError(f"envelope terminal {tid!r} does not match topic terminal {terminal_id!r}")
    return tid


def _body(obj: dict[str, Any]) -> dict[str, Any]:
    body = obj.get("body")
    if not isinstance(body, dict):
        raise WireError("field 'body' must be an object")
    return body


def parse_telemetry(
    payload: bytes, terminal_id: str | None = None, limit: int = MAX_PAYLOAD_BYTES
) -> Telemetry:
    obj = _load(payload, limit)
    tid = _envelope(obj, "telemetry", terminal_id)
    body = _body(obj)
    raw_metrics = body.get("metrics")
    if not isinstance(raw_metrics, dict):
        raise WireError("body.metrics must be an object")
    metrics: dict[str, float] = {}
    for name, value in raw_metrics.items():
        bounds = TELEMETRY_FIELDS.get(name)
        if bounds is None:
            raise WireError(f"unknown metric {name!r}")
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise WireError(f"metric {name!r} must be a number")
        if not bounds[0] <= value <= bounds[1]:
            raise WireError(f"metric {name!r}={value} outside {bounds}")
        metrics[name] = float(value)
    peripherals = _str_map(body.get("peripherals", {}), "body.peripherals")
    names = [k for k in peripherals if not PERIPHERAL_NAME.fullmatch(k)]
    if names:
        raise WireError(f"peripheral names {names!r} do not match {PERIPHERAL_NAME.pattern}")
    bad = {k: v for k, v in peripherals.items() if v not in PERIPHERAL_STATES}
    if bad:
        raise WireError(f"unknown peripheral states {bad}")
    versions = _str_map(body.get("versions", {}), "body.versions")
    faults = body.get("peripheral_faults", {})
    if not isinstance(faults, dict) or len(faults) > 32 or set(faults) - set(peripherals):
        raise WireError("body.peripheral_faults must map reported peripherals to counts")
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in faults.values()):
        raise WireError("body.peripheral_faults counts must be integers >= 0")
    return Telemetry(tid, _seq(obj), _ts(obj), metrics, peripherals, versions, faults)


def parse_event(
    payload: bytes, terminal_id: str | None = None, limit: int = MAX_PAYLOAD_BYTES
) -> Event:
    obj = _load(payload, limit)
    tid = _envelope(obj, "event", terminal_id)
    body = _body(obj)
    etype = body.get("type")
    if not isinstance(etype, str) or not 0 < len(etype) <= 64:
        raise WireError("body.type must be a non-empty string of at most 64 characters")
    data = body.get("data", {})
    if not isinstance(data, dict):
        raise WireError("body.data must be an object")
    return Event(tid, _seq(obj), _ts(obj), etype, data)


def parse_status(
    payload: bytes, terminal_id: str | None = None, limit: int = MAX_PAYLOAD_BYTES
) -> Status:
    obj = _load(payload, limit)
    tid = _envelope(obj, "status", terminal_id)
    online = obj.get("online")
    if not isinstance(online, bool):
        raise WireError("field 'online' must be a boolean")
    hw_model = obj.get("hw_model", "")
    if not isinstance(hw_model, str):
        raise WireError("field 'hw_model' must be a string")
    return Status(
        tid,
        online,
        _ts(obj),
        _str_map(obj.get("versions", {}), "versions"),
        _str_map(obj.get("region", {}), "region", max_items=8),
        hw_model,
    )
