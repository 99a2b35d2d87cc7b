"""The ``id_card_read`` step: read the card on the reader and check it.

The customer screen words a refusal with ``check.REASONS`` (expired, wrong check digit, not
yet valid); the teller sees masked fields only; the full fields go to the cloud (inside the
mTLS link) for the online identity check, the photo only by its SHA-256.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from common.wire.call import StepRequest
from edge.steps.presence import CARD_WAIT_S, once_present
from edge.steps.sign import Done
from firmware_adapters.idcard.adapter import IdCardReader, IdCardRecord
from firmware_adapters.idcard.check import validate

#: Opens the reader for one read (``async with``): the agent's configured serial port.
ReaderFactory = Callable[[], AbstractAsyncContextManager[IdCardReader]]


def _day(value: dt.date | None) -> str | None:
    return None if value is None else value.isoformat()


def card_result(record: IdCardRecord, today: dt.date) -> Done:
    """Pure: what a read card means for the step (``today`` for validity and age)."""
    text = record.text
    check = validate(text, today)
    photo_sha256 = hashlib.sha256(record.photo).hexdigest() if record.photo else None
    full: dict[str, Any] = {
        "name": text.name,
        "sex": text.sex_text,
        "ethnicity": text.ethnicity_text,
        "birth_date": text.birth_date.isoformat(),
        "address": text.address,
        "id_number": text.id_number,
        "issuer": text.issuer,
        "valid_from": text.valid_from.isoformat(),
        "valid_until": _day(text.valid_until),
        "photo_sha256": photo_sha256,
    }
    masked: dict[str, Any] = {
        "name": check.masked_name,
        "id_number": check.masked_id,
        "age": check.age,
        "elderly": check.elderly,
        "valid_until": _day(text.valid_until),
        "photo_sha256": photo_sha256,
        "customer_text": check.customer_text,
    }
    if check.reason is not None:
        masked["refused"] = check.reason
        return Done("failed", check.teller_text, masked, full, send_full=True)
    return Done("passed", check.teller_text, masked, full, send_full=True)


class IdCardStep:
    """Handler for ``id_card_read``; keeps the last photo for this session's face match."""

    def __init__(
        self,
        reader: ReaderFactory,
        today: Callable[[], dt.date],
        on_photo: Callable[[bytes], None] | None = None,
        wait_s: float = CARD_WAIT_S,
    ) -> None:
        self.reader = reader
        self.today = today
        #: how long the customer has to put the card on the reader (``edge.steps.presence``)
        self.wait_s = wait_s
        #: session id -> the decoded photo read in that session (never leaves the terminal)
        self.photos: dict[str, bytes] = {}
        #: told the photo of a read that passed (the face match embeds it once, then)
        self.on_photo = on_photo

    async def __call__(self, request: StepRequest) -> Done:
        async with self.reader() as reader:
            record = await once_present(reader.read_card, self.wait_s)
        if record.photo is not None:
            self.photos.clear()  # one customer at a time
            self.photos[request.session] = record.photo
        done = card_result(record, self.today())
        if done.outcome == "passed" and record.photo is not None and self.on_photo is not None:
            self.on_photo(record.photo)
        return done
