"""Take customer identifiers out of text before it leaves the terminal (logs). Pure.

Resident ID numbers (18 characters, GB 11643), bank card numbers (13-19 digits, spaces or
dashes allowed between them), mobile numbers, and the value after a name key (``name=``,
``"name": "…"``, ``姓名：…``). Free text that names a person without a key is not
recognised: the agent's own log lines never do that, by rule (``docs/terminal.md``).
"""

from __future__ import annotations

import re

_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])"), "[ID]"),
    (re.compile(r"(?<![0-9A-Za-z])\d(?:[ -]?\d){12,18}(?![0-9A-Za-z])"), "[CARD]"),
    (re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)"), "[PHONE]"),
    (
        re.compile(
            r"((?:customer_name|holder_name|holder|name|姓名)[\"']?\s*[:=：]\s*[\"']?)"
            r"([^\s\"',，;；}\]]+)",
            re.IGNORECASE,
        ),
        r"\1[NAME]",
    ),
)


def redact(text: str) -> str:
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    return text
