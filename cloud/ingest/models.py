"""The dead-letter table: what ingest would not store, kept with why and from whom.

A message lands here instead of its proper place when it is authentic (it came on a
terminal's own topic, and an event carried a valid MAC) but cannot be trusted or stored:
a malformed event, a timestamp outside the receive window (quarantined with the receive
time), a sequence number that jumps too far, or a row the store refused while the rest of
its batch landed. Nothing here is used by the rest of the cloud; it is for an operator.
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
    #: Short machine-readable cause: malformed, ts_window, seq_jump, store_refused.
    reason = fields.CharField(max_length=32)
    detail = fields.CharField(max_length=500)
    #: The message as received (UTF-8, undecodable bytes replaced).
    payload = fields.TextField()
    #: Ingest's clock when the message arrived: the only time the cloud trusts for it.
    received_at = fields.DatetimeField()

    class Meta:
        table = "ingest_dead_letter"
