"""Masking of identifiers for every repr and log line.

Only the first digits (region / issuer) and the last four stay visible, so an operator can
still tell two cards apart without the number ever appearing in logs or telemetry.
"""

from __future__ import annotations


def mask_id_number(number: str) -> str:
    """Resident ID number with all but the 4-digit region prefix and the last 4 hidden."""
    return _mask(number, keep_head=4, keep_tail=4)


def mask_pan(pan: str) -> str:
    """Card number with all but the first 4 (issuer) and the last 4 digits hidden."""
    return _mask(pan, keep_head=4, keep_tail=4)


def _mask(value: str, keep_head: int, keep_tail: int) -> str:
    if len(value) <= keep_head + keep_tail:
        return "*" * len(value)
    hidden = len(value) - keep_head - keep_tail
    return value[:keep_head] + "*" * hidden + value[-keep_tail:]
