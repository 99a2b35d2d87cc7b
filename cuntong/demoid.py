"""The ID cards of SX-00001's simulated reader in ``cuntong up``, and the control that
switches between them (``cuntong demo id-card``).

The demo's identity gateway (``cuntong.servers.idcheck.demo_identities``) knows 王美娜 and
张建国 (on record) and 李秀英 (registered deceased). The deck holds, besides those, a card
whose name the record does not match, one whose number the service does not know and one
past its validity, so every answer of the online check (and the terminal's own expiry
check) can be seen from the customer's button, not only through the API.

The reader simulator (``firmware_adapters.idcard.simulator``) is started with the deck as
``--cards`` and a ``--select-file``; writing a card's label there puts that card on the
reader for the next read.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.errors import ConfigError
from common.masking import mask_id_number, mask_name
from firmware_adapters.idcard.simulator import NO_CARD, card_from_json, make_id_number, sample_card


@dataclass(frozen=True)
class DemoIdCard:
    label: str
    #: The simulator's card object (``--cards``): a sample card's index and what differs.
    card: dict[str, Any]
    #: What the demo shows for it, in the operator's words.
    expect: str


def _deck() -> tuple[DemoIdCard, ...]:
    first = sample_card(0).text
    unknown = make_id_number("110105", first.birth_date, 977)
    return (
        DemoIdCard("match", {"index": 0}, "on record: the online check matches (elderly, 1958)"),
        DemoIdCard("match2", {"index": 1}, "on record: the online check matches"),
        DemoIdCard(
            "mismatch",
            {"index": 0, "name": "王美丽"},
            "a known number with another name: the online check says the name does not match",
        ),
        DemoIdCard(
            "not_found",
            {"index": 0, "name": "赵小兰", "id_number": unknown},
            "a well-formed number the identity service does not know: not found",
        ),
        DemoIdCard("deceased", {"index": 2}, "registered deceased: the online check refuses"),
        DemoIdCard(
            "expired",
            {"index": 1, "valid_from": "2004-05-04", "valid_until": "2024-05-04"},
            "validity ended 2024-05-04: the terminal refuses the card itself",
        ),
    )


#: SX-00001's ID cards, the first on the reader when the demo starts.
DECK = _deck()
LABELS = tuple(c.label for c in DECK)
#: Under the terminal's folder (``.state/terminals/<tid>``).
CARDS_FILE = "idcard-cards.json"
SELECT_FILE = "idcard-select"


class UnknownCard(ConfigError):
    """A label the demo reader does not hold."""


def write_deck(folder: Path) -> list[str]:
    """The deck for the simulator under ``folder``; the simulator's extra arguments."""
    cards = folder / CARDS_FILE
    cards.write_text(
        json.dumps([{"label": c.label, **c.card} for c in DECK], ensure_ascii=False, indent=2),
        encoding="utf-8",
    )
    return ["--cards", str(cards), "--select-file", str(folder / SELECT_FILE)]


def select(folder: Path, label: str) -> DemoIdCard | None:
    """Put the card ``label`` (or ``none``) on the reader of the terminal in ``folder``:
    the next read presents it. UnknownCard names the labels there are."""
    if label != NO_CARD and label not in LABELS:
        raise UnknownCard(f"no demo ID card {label!r}; choose one of {', '.join(LABELS)}, none")
    path = folder / SELECT_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(label + "\n", encoding="utf-8")
    os.replace(tmp, path)  # the simulator never reads half a label
    return next((c for c in DECK if c.label == label), None)


def selected(folder: Path) -> str:
    """The label on the reader now (the deck's first until one is selected)."""
    try:
        chosen = (folder / SELECT_FILE).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        chosen = ""
    return chosen or DECK[0].label


def describe(folder: Path) -> str:
    """The deck, masked as a teller would see it, the card on the reader marked."""
    now = selected(folder)
    lines = []
    for c in DECK:
        text = card_from_json({"label": c.label, **c.card}).text
        mark = "*" if c.label == now else " "
        who = f"{mask_name(text.name)} {mask_id_number(text.id_number)}"
        lines.append(f"{mark} {c.label:<10} {who}  {c.expect}")
    if now == NO_CARD:
        lines.append("* none       (the reader is empty)")
    return "\n".join(lines)
