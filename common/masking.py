"""Masking of identifiers for every repr, log line and customer screen.

Only the first digits (region / issuer) and the last four stay visible, so an operator can
still tell two cards apart without the number ever appearing in logs or telemetry.

    mask_id_number("610102199001011234") -> "6101**********1234"
    mask_name("张建三") -> "张*三"; mask_name("张三") -> "张*"; mask_name("欧阳娜娜") -> "欧**娜"
"""

from __future__ import annotations


def mask_id_number(number: str) -> str:
    """Resident ID number with all but the 4-digit region prefix and the last 4 hidden."""
    return _mask(number, keep_head=4, keep_tail=4)


def mask_pan(pan: str) -> str:
    """Card number with all but the first 4 (issuer) and the last 4 digits hidden."""
    return _mask(pan, keep_head=4, keep_tail=4)


def mask_name(name: str) -> str:
    """A name with its first and last characters kept (3+ characters) or only its first (2)."""
    if len(name) <= 1:
        return name
    if len(name) == 2:
        return name[0] + "*"
    return _mask(name, keep_head=1, keep_tail=1)


def _mask(value: str, keep_head: int, keep_tail: int) -> str:
    if len(value) <= keep_head + keep_tail:
        return "*" * len(value)
    hidden = len(value) - keep_head - keep_tail
    return value[:keep_head] + "*" * hidden + value[-keep_tail:]
