"""Turns spooled entries into (topic, bytes) for the wire. Pure."""

from __future__ import annotations

from common import envelope
from common.topics import Channel, topic
from edge.spool import Entry, Kind


def encode(terminal_id: str, entry: Entry) -> tuple[str, bytes]:
    if entry.kind is Kind.TELEMETRY:
        msg: envelope.Telemetry | envelope.Event = envelope.Telemetry(
            terminal_id,
            entry.seq,
            entry.ts_ms,
            entry.body["metrics"],
            entry.body.get("peripherals", {}),
            entry.body.get("versions", {}),
            entry.body.get("peripheral_faults", {}),
        )
        return topic(terminal_id, Channel.TELEMETRY), msg.to_bytes()
    msg = envelope.Event(
        terminal_id, entry.seq, entry.ts_ms, entry.body["type"], entry.body["data"]
    )
    return topic(terminal_id, Channel.EVENT), msg.to_bytes()
