"""A simulated encrypting PIN pad; the only place in cuntong where a clear PIN exists.

`PinPadSimulator` is pure (frames in, frames out, time as an argument). The "customer" is a
key script typed after PIN entry starts: digits, '#' enter, '<' clear, '*' cancel; without
'#' the entry times out. Key events sent to the host say only that a key was pressed.

    python -m firmware_adapters.pinpad.simulator --pty-link /tmp/cuntong-pinpad.tty --keys 123456#

`--key-store FILE` keeps the loaded keys across restarts (a real pad's battery-backed secure
memory; the file is 0600), `--keys-file FILE` reads the customer's key script from a JSON
file's `customer_types` at the start of each entry (enter is added), so a demo can change
what the simulated customer types without restarting the pad.
"""

from __future__ import annotations

import argparse
import json
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from firmware_adapters.errors import FieldInvalid, FrameChecksum, FrameError
from firmware_adapters.pinpad import crypto
from firmware_adapters.pinpad.frame import FrameDecoder, decode, encode
from firmware_adapters.pinpad.pinblock import FORMATS, encrypt_pin_block

#: fault name -> misbehaviour, applied to the next answer
FAULTS: dict[str, str] = {
    "silent": "no answer",
    "checksum": "answer with a wrong checksum",
    "truncate": "send half the answer",
    "oversize": "declare 999 bytes and send a few",
}


@dataclass
class _Entry:
    slot: int
    fmt: str
    pan: str
    min_len: int
    max_len: int
    deadline: float
    keys: deque[tuple[float, str]]
    digits: list[str] = field(default_factory=list, repr=False)


class PinPadSimulator:
    """Keys in slots, one PIN entry at a time, events timed by the key script."""

    def __init__(
        self,
        keys: str = "123456#",
        key_interval: float = 0.02,
        rng: Callable[[int], bytes] = os.urandom,
        slots: dict[int, tuple[str, bytes]] | None = None,
        on_keys: Callable[[dict[int, tuple[str, bytes]]], None] | None = None,
        key_source: Callable[[], str | None] | None = None,
    ) -> None:
        self.key_script = keys
        self.key_interval = key_interval
        self.slots: dict[int, tuple[str, bytes]] = dict(slots or {})
        #: told of every key loaded (the I/O shell keeps them); and asked, at each entry's
        #: start, what the customer types (None: the script as it is)
        self._on_keys = on_keys
        self._key_source = key_source
        self.faults: deque[str] = deque()
        self._entry: _Entry | None = None
        self._block: bytes | None = None
        self._random = rng  # format 4 fill
        self._component: tuple[int, str, bytes] | None = None  # first custodian's part

    def inject(self, fault: str) -> None:
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
        self.faults.append(fault)

    def press(self, keys: str, now: float) -> None:
        """The customer presses ``keys`` from ``now`` on, into the entry that waits for them
        (one who types after reading the screen). Call it under the server's lock."""
        entry = self._entry
        if entry is None:
            raise ValueError("no PIN entry is waiting for keys")
        start = max([now, *(t for t, _ in entry.keys)])
        entry.keys.extend((start + self.key_interval * (i + 1), k) for i, k in enumerate(keys))

    @property
    def entering(self) -> bool:
        """A PIN entry is running (the pad waits for keys)."""
        return self._entry is not None

    def new_decoder(self) -> FrameDecoder:
        return FrameDecoder()

    def handle(self, frame: bytes, now: float) -> list[bytes]:
        text = decode(frame)
        answer = self._answer(text, now)
        return _apply_fault(encode(answer), self.faults.popleft() if self.faults else None)

    def handle_error(self, err: FrameError) -> list[bytes]:
        return [encode("E6" if isinstance(err, FrameChecksum) else "E3")]

    def next_deadline(self) -> float | None:
        if self._entry is None:
            return None
        if self._entry.keys:
            return min(self._entry.keys[0][0], self._entry.deadline)
        return self._entry.deadline

    def tick(self, now: float) -> list[bytes]:
        """Key presses whose time has come, and the end of entry."""
        entry, out = self._entry, list[bytes]()
        if entry is None:
            return out
        while entry.keys and entry.keys[0][0] <= now:
            _, key = entry.keys.popleft()
            if key.isdigit():
                if len(entry.digits) < entry.max_len:
                    entry.digits.append(key)
                    out.append(encode("K*"))
            elif key == "<":
                entry.digits.clear()
                out.append(encode("KC"))
            elif key == "*":
                return [*out, self._finish("FEC")]
            elif key == "#" and len(entry.digits) >= entry.min_len:
                return [*out, self._finish("F00")]
        if now >= entry.deadline:
            out.append(self._finish("FEE"))
        return out

    def _finish(self, status: str) -> bytes:
        entry, self._entry = self._entry, None
        if status == "F00" and entry is not None:
            _alg, key = self.slots[entry.slot]
            self._block = encrypt_pin_block(
                entry.fmt, key, "".join(entry.digits), entry.pan, self._random(8)
            )
        return encode(status)

    def _answer(self, text: str, now: float) -> str:
        cmd, args = text[:1], text[1:]
        try:
            match cmd:
                case "1":
                    slot, alg, key = int(args[0]), args[1], bytes.fromhex(args[2:])
                    kcv = crypto.key_check_value(alg, key)
                    self._store(slot, alg, key)
                    return "00" + kcv.hex().upper()
                case "2":
                    master, slot = int(args[0]), int(args[1])
                    if master not in self.slots:
                        return "E1"
                    alg, mkey = self.slots[master]
                    key_hex, _, expected = args[2:].partition(":")
                    key = crypto.decrypt(alg, mkey, bytes.fromhex(key_hex))
                    check = crypto.key_check_value(alg, key).hex().upper()
                    if expected and not check.startswith(expected.upper()):
                        return "E6"  # garbled in transit or under another master: keep the old
                    self._store(slot, alg, key)
                    return "00" + check
                case "8":
                    return self._component_part(int(args[0]), args[1], args[2], args[3:])
                case "3":
                    return "00CUNTONG-SIMPAD/1 slots=" + ",".join(map(str, sorted(self.slots)))
                case "5":
                    if self._entry is not None:
                        self._entry.keys = deque([(now, "*")])
                    return "00"
                case "6":
                    return self._start(args, now)
                case "7":
                    block, self._block = self._block, None
                    return "E4" if block is None else "00" + block.hex().upper()
        except (ValueError, IndexError, FieldInvalid):
            return "E3"
        return "E0"

    def _store(self, slot: int, alg: str, key: bytes) -> None:
        self.slots[slot] = (alg, key)
        if self._on_keys is not None:
            self._on_keys(dict(self.slots))

    def _component_part(self, slot: int, alg: str, part: str, rest: str) -> str:
        """Dual control: two custodians each key in a component with its check value."""
        value_hex, _, kcv = rest.partition(":")
        value = bytes.fromhex(value_hex)
        if not kcv or not crypto.key_check_value(alg, value).hex().upper().startswith(kcv.upper()):
            self._component = None
            return "E6"
        if part == "1":
            self._component = (slot, alg, value)
            return "00"
        if part != "2" or self._component is None or self._component[:2] != (slot, alg):
            self._component = None
            return "E3"
        first, self._component = self._component[2], None
        if len(first) != len(value):
            return "E3"
        key = bytes(a ^ b for a, b in zip(first, value, strict=True))
        self._store(slot, alg, key)
        return "00" + crypto.key_check_value(alg, key).hex().upper()

    def _start(self, args: str, now: float) -> str:
        if self._entry is not None:
            return "E7"
        slot, fmt = int(args[0]), args[1]
        min_len, max_len, seconds, pan = int(args[2:4]), int(args[4:6]), int(args[6:9]), args[9:]
        if fmt not in FORMATS or not pan.isdigit():
            return "E3"
        if slot not in self.slots:
            return "E2"
        if self.slots[slot][0] != FORMATS[fmt][0]:
            return "E3"  # the working key's algorithm must match the block format
        if self._key_source is not None:
            self.key_script = self._key_source() or self.key_script
        keys = deque((now + self.key_interval * (i + 1), k) for i, k in enumerate(self.key_script))
        self._block = None
        self._entry = _Entry(slot, fmt, pan, min_len, max_len, now + seconds, keys)
        return "00"


def _apply_fault(frame: bytes, fault: str | None) -> list[bytes]:
    match fault:
        case None:
            return [frame]
        case "silent":
            return []
        case "checksum":
            return [frame[:-1] + (b"0" if frame[-1:] != b"0" else b"1")]
        case "truncate":
            return [frame[: len(frame) // 2]]
        case "oversize":
            return [b"\x02999" + frame[4:]]
    raise ValueError(fault)


def load_key_store(path: Path) -> dict[int, tuple[str, bytes]]:
    """The keys a pad kept (``--key-store``); empty when the file does not exist yet."""
    if not path.exists():
        return {}
    raw = json.loads(path.read_text())
    return {int(slot): (alg, bytes.fromhex(key)) for slot, (alg, key) in raw.items()}


def save_key_store(path: Path, slots: dict[int, tuple[str, bytes]]) -> None:
    body = {str(slot): [alg, key.hex()] for slot, (alg, key) in slots.items()}
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(body, fh)
    os.replace(tmp, path)


def keys_from_file(path: Path) -> str | None:
    """What the customer types, from the JSON file's ``customer_types`` (digits; '#' added
    unless the script has its own end); None when the file or the field is missing."""
    try:
        typed = json.loads(path.read_text()).get("customer_types")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(typed, str) or not typed:
        return None
    return typed if typed[-1] in "#*" else typed + "#"


def main(argv: list[str] | None = None) -> None:
    """Serve the simulated pad on a pty until SIGINT / SIGTERM."""
    from firmware_adapters.pty_server import serve_until_signalled

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pty-link", type=Path, required=True)
    parser.add_argument("--baud", type=int, default=9600)
    parser.add_argument("--keys", default="123456#", help="what the customer types")
    parser.add_argument("--key-interval", type=float, default=0.3, help="seconds between keys")
    parser.add_argument("--key-store", type=Path, help="keep loaded keys here (0600)")
    parser.add_argument("--keys-file", type=Path, help="JSON whose customer_types is typed")
    args = parser.parse_args(argv)
    store: Path | None = args.key_store
    keys_file: Path | None = args.keys_file
    sim = PinPadSimulator(
        args.keys,
        args.key_interval,
        slots=load_key_store(store) if store else None,
        on_keys=(lambda slots: save_key_store(store, slots)) if store else None,
        key_source=(lambda: keys_from_file(keys_file)) if keys_file else None,
    )
    serve_until_signalled(sim, args.pty_link, args.baud, "PIN pad")


if __name__ == "__main__":
    main()
