"""A simulated SAM_V ID-card reader with configurable cards and faults.

`IdCardSimulator` is pure (frames in, frames out); `main()` serves it on a pty for the demo:

    python -m firmware_adapters.idcard.simulator --pty-link /tmp/cuntong-idcard.tty

Faults are queued per command and consumed in order (see FAULTS), e.g.
`--fault read_base:pulled` answers the next read as if the card had been pulled out.

`--select-file PATH` lets an operator or a test change the card on the reader while it runs:
the file holds a card's label (the `label` of its `--cards` object) or its index, or `none`
for an empty reader, and is read again at every card search (`find`), so the next read
presents that card (`cuntong demo id-card` writes it in `cuntong up`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware_adapters.errors import FrameChecksum, FrameError
from firmware_adapters.idcard.frame import (
    PREAMBLE,
    BaseInfo,
    Command,
    FrameDecoder,
    Response,
)
from firmware_adapters.idcard.text import IdCardText, id_check_digit

#: The simulated cards' photo: a 102x126 JPEG (the size of a decoded ID-card photo) cropped
#: from edge/vision/health_face.jpg (scikit-image's `astronaut`, public domain), quality 45 so
#: a read-base answer stays under the protocol's 0x0A00 frame limit.
SIM_PHOTO = Path(__file__).with_name("sim_photo.jpg")

#: What a select file says for an empty reader.
NO_CARD = "none"

log = logging.getLogger("cuntong.idcard.simulator")

#: fault name -> what the simulated reader does instead of answering normally
FAULTS: dict[str, str] = {
    "silent": "no answer at all (host times out)",
    "checksum": "answer with a wrong checksum",
    "truncate": "send only the first half of the answer",
    "oversize": "send a header declaring 0xFFFF bytes",
    "garbage": "send noise without a preamble",
    "pulled": "card pulled out: read fails (SW3 41) and the card is gone",
    "no_card": "find fails (SW3 80)",
}


@dataclass(frozen=True)
class SimCard:
    """One card the simulated reader can hold."""

    text: IdCardText
    photo_wlt: bytes = field(repr=False)
    serial: bytes = b"\x01\x02\x03\x04\x05\x06\x07\x08"
    #: The name an operator picks it by (``--select-file``); empty for none.
    label: str = ""


def make_id_number(region: str, birth: dt.date, seq: int) -> str:
    """A well-formed 18-character ID number (test data; the check digit is computed)."""
    first17 = f"{region}{birth:%Y%m%d}{seq:03d}"
    return first17 + id_check_digit(first17)


def sample_card(index: int = 0) -> SimCard:
    """A deterministic test card; different `index` values give different people."""
    birth = dt.date(1958, 3, 12) + dt.timedelta(days=397 * index)
    text = IdCardText(
        name=["王美娜", "张建国", "李秀英"][index % 3],
        sex="2" if index % 3 != 1 else "1",
        ethnicity="01",
        birth_date=birth,
        address="陕西省西安市新城区解放路123号",
        id_number=make_id_number("610102", birth, 123 + index),
        issuer="西安市公安局新城分局",
        valid_from=dt.date(2016, 5, 4),
        valid_until=None if index % 2 == 0 else dt.date(2036, 5, 4),
    )
    # A real reader sends 1024 bytes of WLT; the simulator sends the decoded image instead
    # (photo.SimulatorPhotoDecoder passes it through).
    return SimCard(text=text, photo_wlt=SIM_PHOTO.read_bytes(), serial=bytes([index]) * 8)


def apply_fault(frame: bytes, fault: str | None) -> list[bytes]:
    """The bytes a faulty reader would send instead of `frame`."""
    match fault:
        case None | "pulled" | "no_card":
            return [frame]
        case "silent":
            return []
        case "checksum":
            return [frame[:-1] + bytes([frame[-1] ^ 0xFF])]
        case "truncate":
            return [frame[: len(frame) // 2]]
        case "oversize":
            return [PREAMBLE + b"\xff\xff" + frame[7:]]
        case "garbage":
            return [bytes(range(0x20, 0x60))]
    raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")


class IdCardSimulator:
    """Reader state machine: find -> select -> read, with an optional card inserted."""

    def __init__(self, cards: list[SimCard] | None = None, select_file: Path | None = None) -> None:
        self.cards = list(cards) if cards is not None else [sample_card()]
        self.card: SimCard | None = self.cards[0] if self.cards else None
        self.selected = False
        self.faults: deque[tuple[str, str]] = deque()
        self.commands_seen = 0
        self.select_file = select_file
        self._chosen: str | None = None

    def pick(self, choice: str) -> SimCard | None:
        """The card a label or an index names; None for ``none``. KeyError if unknown."""
        if choice == NO_CARD:
            return None
        for card in self.cards:
            if card.label and card.label == choice:
                return card
        if choice.isdigit() and int(choice) < len(self.cards):
            return self.cards[int(choice)]
        known = [c.label for c in self.cards if c.label] or [str(i) for i in range(len(self.cards))]
        raise KeyError(f"no card {choice!r} on this reader; known: {', '.join(known)}, {NO_CARD}")

    def follow_selection(self) -> None:
        """Put the card the select file names on the reader, if it changed since last read."""
        if self.select_file is None:
            return
        try:
            choice = self.select_file.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return
        if not choice or choice == self._chosen:
            return
        self._chosen = choice
        try:
            card = self.pick(choice)
        except KeyError as err:
            log.warning("select file %s: %s (the card stays as it was)", self.select_file, err)
            return
        if card is None:
            self.remove()
        else:
            self.insert(card)
        log.info("card on the reader now: %s", choice)

    def insert(self, card: SimCard | None = None) -> None:
        self.card = card or (self.cards[0] if self.cards else sample_card())
        self.selected = False

    def remove(self) -> None:
        self.card = None
        self.selected = False

    def inject(self, command: str, fault: str) -> None:
        """Queue a fault for the next `command` (a COMMANDS name, or '*' for any)."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
        self.faults.append((command, fault))

    def new_decoder(self) -> FrameDecoder:
        return FrameDecoder()

    def handle(self, frame: bytes, now: float) -> list[bytes]:
        cmd = Command.parse(frame)
        self.commands_seen += 1
        fault = self._take_fault(cmd.name)
        return apply_fault(self._answer(cmd, fault).to_bytes(), fault)

    def handle_error(self, err: FrameError) -> list[bytes]:
        code = 0x10 if isinstance(err, FrameChecksum) else 0x11
        return [Response(0, 0, code).to_bytes()]

    def tick(self, now: float) -> list[bytes]:
        return []

    def next_deadline(self) -> float | None:
        return None

    def _take_fault(self, name: str) -> str | None:
        for i, (command, fault) in enumerate(self.faults):
            if command in (name, "*"):
                del self.faults[i]
                return fault
        return None

    def _answer(self, cmd: Command, fault: str | None) -> Response:
        match cmd.name:
            case "status" | "reset_sam":
                return Response(0, 0, 0x90)
            case "read_sam_id":
                return Response(0, 0, 0x90, bytes(range(16)))
            case "find":
                self.follow_selection()
                if self.card is None or fault == "no_card":
                    return Response(0, 0, 0x80)
                return Response(0, 0, 0x9F, b"\x00\x00\x00\x00")
            case "select":
                if self.card is None:
                    return Response(0, 0, 0x81)
                self.selected = True
                return Response(0, 0, 0x90, self.card.serial)
            case "read_base":
                if fault == "pulled":
                    self.remove()
                if self.card is None or not self.selected:
                    return Response(0, 0, 0x41)
                info = BaseInfo(self.card.text.to_bytes(), self.card.photo_wlt)
                return Response(0, 0, 0x90, info.to_bytes())
        return Response(0, 0, 0x21)


def card_from_json(obj: dict[str, Any]) -> SimCard:
    """A card from its JSON object: a sample card's ``index`` and the fields that differ
    (``name``, ``id_number``, dates as ISO strings, ...), and its ``label``."""
    base = sample_card(int(obj.get("index", 0)))
    until = obj.get("valid_until")
    text = IdCardText(
        name=obj.get("name", base.text.name),
        sex=obj.get("sex", base.text.sex),
        ethnicity=obj.get("ethnicity", base.text.ethnicity),
        birth_date=dt.date.fromisoformat(obj["birth_date"])
        if "birth_date" in obj
        else base.text.birth_date,
        address=obj.get("address", base.text.address),
        id_number=obj.get("id_number", base.text.id_number),
        issuer=obj.get("issuer", base.text.issuer),
        valid_from=dt.date.fromisoformat(obj["valid_from"])
        if "valid_from" in obj
        else base.text.valid_from,
        valid_until=dt.date.fromisoformat(until) if until else base.text.valid_until,
    )
    return SimCard(
        text=text, photo_wlt=base.photo_wlt, serial=base.serial, label=str(obj.get("label", ""))
    )


def main(argv: list[str] | None = None) -> None:
    """Serve the simulated reader on a pty until SIGINT / SIGTERM."""
    from firmware_adapters.pty_server import serve_until_signalled

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pty-link", type=Path, required=True, help="symlink to create")
    parser.add_argument("--baud", type=int, default=115200, help="pace output at this rate")
    parser.add_argument("--cards", type=Path, help="JSON list of card objects (fields optional)")
    parser.add_argument("--no-card", action="store_true", help="start with the reader empty")
    parser.add_argument(
        "--select-file", type=Path,
        help="file naming the card on the reader (a label, an index or 'none'), re-read at "
        "every card search",
    )  # fmt: skip
    parser.add_argument(
        "--fault", action="append", default=[], metavar="COMMAND:FAULT", help=str(FAULTS)
    )
    args = parser.parse_args(argv)
    cards = (
        [card_from_json(c) for c in json.loads(args.cards.read_text())]
        if args.cards
        else [sample_card(0), sample_card(1)]
    )
    sim = IdCardSimulator(cards, args.select_file)
    if args.no_card:
        sim.remove()
    for spec in args.fault:
        command, _, fault = spec.partition(":")
        sim.inject(command, fault)
    serve_until_signalled(sim, args.pty_link, args.baud, "ID-card reader")


if __name__ == "__main__":
    main()
