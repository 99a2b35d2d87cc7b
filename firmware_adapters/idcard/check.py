"""Is this card acceptable today? Pure checks on a read ID card, with the words to say.

    check = validate(record.text, today=dt.date(2025, 6, 1))
    check.ok, check.reason, check.customer_text, check.age, check.elderly

One refusal at a time, in the order of REASONS; each reason has a plain Chinese sentence the
customer screen can show or speak and a short teller line. `today` is an argument (the
caller's clock, in the branch's time zone), never read here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from firmware_adapters.idcard.text import IdCardText, id_check_digit
from firmware_adapters.masking import mask_id_number, mask_name

ELDERLY_AGE = 60


@dataclass(frozen=True)
class Reason:
    """Why a card is refused: a stable code and the words for each screen."""

    code: str
    customer_text: str
    teller_text: str


#: code -> Reason, in the order they are checked
REASONS: dict[str, Reason] = {
    r.code: r
    for r in (
        Reason(
            "bad_check_digit",
            "身份证号码校验失败，请重新放置身份证或使用其他有效证件",
            "ID number fails its GB 11643 check digit: damaged or forged card",
        ),
        Reason(
            "not_yet_valid",
            "身份证尚未生效，请使用有效证件",
            "card's validity period has not started",
        ),
        Reason("expired", "身份证已过期，请使用有效证件", "card has expired"),
    )
}


@dataclass(frozen=True)
class CardCheck:
    """The outcome of `validate`: ok, or the first reason to refuse, plus age facts."""

    ok: bool
    reason: str | None
    age: int
    elderly: bool
    masked_name: str
    masked_id: str

    @property
    def customer_text(self) -> str:
        return "身份证读取成功" if self.reason is None else REASONS[self.reason].customer_text

    @property
    def teller_text(self) -> str:
        return "ID card valid" if self.reason is None else REASONS[self.reason].teller_text


def age_on(birth: dt.date, today: dt.date) -> int:
    """Whole years of age on `today` (someone born on 29 Feb ages on 1 Mar in common years)."""
    had_birthday = (today.month, today.day) >= (birth.month, birth.day)
    return today.year - birth.year - (0 if had_birthday else 1)


def _check_digit_ok(number: str) -> bool:
    if len(number) != 18 or not number[:17].isdigit():
        return False
    return id_check_digit(number[:17]) == number[17]


def validate(card: IdCardText, today: dt.date, elderly_age: int = ELDERLY_AGE) -> CardCheck:
    """Refuse a card with a wrong check digit, not yet valid, or expired (valid_until < today).

    The card is still valid on its `valid_until` day; a long-term card (None) never expires.
    """
    if not _check_digit_ok(card.id_number):
        reason: str | None = "bad_check_digit"
    elif today < card.valid_from:
        reason = "not_yet_valid"
    elif card.valid_until is not None and today > card.valid_until:
        reason = "expired"
    else:
        reason = None
    age = age_on(card.birth_date, today)
    return CardCheck(
        ok=reason is None,
        reason=reason,
        age=age,
        elderly=age >= elderly_age,
        masked_name=mask_name(card.name),
        masked_id=mask_id_number(card.id_number),
    )
