"""Masking of personal data for display (pure).

ID number 610102199001011234 -> 6101**********1234  (first 4, last 4)
card 6217001234567891234     -> 6217***********1234 (first 4, last 4)
phone 13812345678            -> 138****5678
name 王美娜                  -> 王**
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


def _keep(value: str, head: int, tail: int) -> str:
    if len(value) <= head + tail:
        return "*" * len(value)
    return value[:head] + "*" * (len(value) - head - tail) + value[len(value) - tail :]


def mask_id_number(value: str) -> str:
    return _keep(value, 4, 4)


def mask_card_number(value: str) -> str:
    return _keep(value.replace(" ", ""), 4, 4)


def mask_phone(value: str) -> str:
    return _keep(value, 3, 4)


def mask_name(value: str) -> str:
    return value[:1] + "*" * (len(value) - 1) if value else value


MASKS: Mapping[str, Callable[[str], str]] = {
    "id_number": mask_id_number,
    "card_number": mask_card_number,
    "phone": mask_phone,
    "name": mask_name,
}


def mask_fields(record: Mapping[str, Any]) -> dict[str, Any]:
    """A copy with every known personal field masked; other fields unchanged."""
    return {
        key: MASKS[key](value) if key in MASKS and isinstance(value, str) else value
        for key, value in record.items()
    }
