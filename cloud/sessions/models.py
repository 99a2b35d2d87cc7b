"""Database models of teller sessions: tellers' skills, sessions, every state transition.

App label ``models`` (``cloud.db.MODEL_MODULES`` lists ``"cloud.sessions.models"``). A teller
is an oversight account (``cloud.auth.models.Account``) holding the ``teller`` role; its
``TellerProfile`` (same id) says what it can serve. A session row holds the latest state,
the facts routing needed and what the terminal reported (customer, liveness, rating);
``SessionTransition`` rows are the audit trail, enough to ``state.replay`` it.
"""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model


class TellerProfile(Model):
    #: The teller's account id (``cloud.auth.models.Account.id``).
    id = fields.CharField(max_length=64, primary_key=True)
    #: business code (the workflow catalogue's) -> proficiency 1-5
    businesses: fields.Field[dict[str, int]] = fields.JSONField(default=dict)
    #: language codes (see cloud.sessions.skills.LANGUAGES)
    languages: fields.Field[list[str]] = fields.JSONField(default=list)
    updated_at = fields.DatetimeField()

    class Meta:
        table = "teller_profile"


class TellerSession(Model):
    id = fields.CharField(max_length=64, primary_key=True)
    terminal_id = fields.CharField(max_length=64, db_index=True)
    business = fields.CharField(max_length=32)
    language = fields.CharField(max_length=16)
    elderly = fields.BooleanField(default=False)
    state = fields.CharField(max_length=16, db_index=True)
    teller_id = fields.CharField(max_length=64, null=True, db_index=True)
    janus_node = fields.CharField(max_length=64, null=True)
    requested_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()
    recording_path = fields.CharField(max_length=512, null=True)
    recording_sha256 = fields.CharField(max_length=64, null=True)
    #: The terminal's request id (echoed in the first ``queued``).
    request_id = fields.CharField(max_length=64, null=True)
    #: As read from the ID card at the terminal; shown masked (cloud.auth.masking).
    customer_name = fields.CharField(max_length=64, null=True)
    customer_id_number = fields.CharField(max_length=32, null=True)
    #: The agent's liveness verdict, as it sent it.
    liveness: fields.Field[dict[str, Any] | None] = fields.JSONField(null=True)
    #: The customer's rating after the call (1-5).
    rating = fields.SmallIntField(null=True)
    #: The teller's outcome: was the customer's matter resolved in this contact?
    resolved = fields.BooleanField(null=True)
    #: Its place on the desk's board while it waits (``routing.Request``: arrival time,
    #: rank and sequence number), so a desk taking over serves it in the same order.
    queue_arrived = fields.FloatField(null=True)
    queue_rank = fields.FloatField(null=True)
    queue_seq = fields.BigIntField(null=True)
    #: The position the terminal was last told (``queued``), told again after a takeover.
    announced = fields.IntField(null=True)
    #: The call's grants (``Grant.message`` of the customer, the teller and each guest) and
    #: the teller feeds the room has seen, so a desk taking over adopts the live call.
    media: fields.Field[dict[str, Any] | None] = fields.JSONField(null=True)
    #: Tellers not to be offered this request again until then (teller id -> epoch s: the
    #: re-offer cooldown after a declined or unanswered offer), kept for a desk taking over.
    excluded: fields.Field[dict[str, float] | None] = fields.JSONField(null=True)
    #: A ring-back: the customer chose to be called back and may have left the screen.
    #: (有空了叫我 on the terminal, its ``ring_back`` message.) The teller's offer and
    #: panel say so, and a desk taking over keeps it.
    ring_back = fields.BooleanField(default=False)

    class Meta:
        table = "teller_session"


class SessionTransition(Model):
    id = fields.BigIntField(primary_key=True)
    session: fields.ForeignKeyRelation[TellerSession] = fields.ForeignKeyField(
        "models.TellerSession", related_name="transitions"
    )
    at = fields.DatetimeField(db_index=True)
    event = fields.CharField(max_length=16)
    from_state = fields.CharField(max_length=16, null=True)
    to_state = fields.CharField(max_length=16)
    cause = fields.CharField(max_length=255, default="")
    teller_id = fields.CharField(max_length=64, null=True)

    class Meta:
        table = "teller_session_transition"


class DeskTeller(Model):
    """A teller's state on the desk's board (available, busy, wrap-up, break, offline) and
    since when, so a desk taking over (``cloud.lease``) starts from the same board."""

    id = fields.CharField(max_length=64, primary_key=True)
    state = fields.CharField(max_length=16)
    #: Epoch seconds (the board's clock).
    state_since = fields.FloatField()
    idle_since = fields.FloatField()
    #: No offers before this (epoch s): the hold after an unanswered offer.
    hold_until = fields.FloatField(default=0.0)
    #: Unanswered offers in a row (so many put the teller on break).
    missed = fields.IntField(default=0)

    class Meta:
        table = "desk_teller"


class DeskAbsence(Model):
    """A party the desk's grace-period watch has missing (``cloud.sessions.watch``): a
    terminal whose link dropped, a teller without a connection, and since when. A desk
    taking over continues the grace period from then instead of starting it again."""

    #: ``terminal:<id>`` or ``teller:<id>``.
    id = fields.CharField(max_length=80, primary_key=True)
    #: Epoch seconds (the board's clock) when they went missing.
    since = fields.FloatField()

    class Meta:
        table = "desk_absence"


class DeskHandleTime(Model):
    """The handle times the desk has learned for one business (``estimate.HandleTimes``:
    the last ``window`` calls, oldest first), so a desk taking over announces the same
    expected waits."""

    business = fields.CharField(max_length=32, primary_key=True)
    #: Seconds per finished call, oldest first.
    seconds: fields.Field[list[float]] = fields.JSONField(default=list)

    class Meta:
        table = "desk_handle_time"


class HeldIdRead(Model):
    """An ID read the customer made before queueing (先刷身份证), verified when its request
    reached the desk and held for the session until the teller reaches ``id_card_read``.

    In the database, not in the desk's memory, so a restarted desk or a standby taking over
    still has it. Used once: taking it deletes the row, and only the replica whose delete
    removed it records the step (``cloud.sessions.store.take_id_read``). The terminal's
    signed result is kept sealed under the session's evidence data key (it carries the full
    card data); ``masked`` is what the teller's panel shows. Rows expire at ``expires_at``
    and are deleted by the next hold or take after that."""

    #: The terminal's request id, which the signed read is bound to (its nonce).
    request_id = fields.CharField(max_length=64, primary_key=True)
    session_id = fields.CharField(max_length=64, unique=True)
    terminal_id = fields.CharField(max_length=64)
    #: base64 of the sealed call-codec bytes of the signed ``StepResult``.
    sealed = fields.TextField()
    #: The masked fields the teller may see (name, id_number, age, elderly).
    masked: fields.Field[dict[str, Any]] = fields.JSONField(default=dict)
    held_at = fields.DatetimeField()
    expires_at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "held_id_read"
