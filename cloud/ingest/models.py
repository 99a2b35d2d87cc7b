"""The dead-letter table: what ingest would not store, kept with why and from whom.

A message lands here instead of its proper place when it came on a terminal's own topic
(the broker lets only that terminal's certificate publish there) but cannot be trusted or
stored: a malformed or oversized message, an event whose MAC does not verify, a timestamp
outside the receive window (quarantined with the receive time), a sequence number that
jumps too far, or a row the store refused while the rest of its batch landed. Nothing here
is used by the rest of the cloud; it is for an operator.

Once a row is committed here, ingest confirms its sequence number to the terminal like a
stored message (``common.wire.ack``), so the terminal stops sending it: kept once, not
re-sent forever. ``(terminal_id, kind, seq)`` is unique, so a copy (QoS 1 redelivery, a
spool re-send, every ingest instance receiving the same event) adds no second row. A message
with no readable sequence number is kept with ``seq`` NULL (never a conflict).
"""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class IngestDeadLetter(Model):
    id = fields.BigIntField(primary_key=True)
    #: Plain text, not a foreign key: the terminal may be unknown, and this must always insert.
    terminal_id = fields.CharField(max_length=64, db_index=True)
    #: telemetry, event or status (the topic's channel).
    kind = fields.CharField(max_length=16)
    #: The message's sequence number when it has a readable one (confirmed to the terminal).
    seq = fields.BigIntField(null=True)
    # Also oversized and bad_mac (not in the description below: that is schema).
    #: Short machine-readable cause: malformed, ts_window, seq_jump, store_refused.
    reason = fields.CharField(max_length=32)
    detail = fields.CharField(max_length=500)
    # Exactly as received when it is UTF-8 text without NUL (which a text column cannot
    # hold); otherwise ``base64:`` and the base64 of the exact bytes. Bytes past
    # ``cloud.ingest.classify.MAX_KEPT_BYTES`` are cut; ``detail`` then gives the full size
    # and SHA-256 (``classify.kept_payload``). The description below is schema.
    #: The message as received (UTF-8, undecodable bytes replaced).
    payload = fields.TextField()
    #: Ingest's clock when the message arrived: the only time the cloud trusts for it.
    received_at = fields.DatetimeField()

    class Meta:
        table = "ingest_dead_letter"
        unique_together = (("terminal_id", "kind", "seq"),)
