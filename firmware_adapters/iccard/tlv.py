"""BER-TLV as used by EMV / PBOC (ISO 7816-4 annex D), as pure functions.

Tags are 1-3 bytes (a first byte with low bits 11111 continues; a following byte with its top
bit set continues again); lengths are short (< 0x80) or 81 xx / 82 xx xx. Constructed tags
(bit 6 of the first byte set) hold nested TLVs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from firmware_adapters.errors import FrameError, FrameOversized, FrameTruncated

MAX_VALUE = 0xFFFF


@dataclass(frozen=True)
class Tlv:
    """One element; `children` is filled for constructed tags."""

    tag: int
    value: bytes
    children: tuple[Tlv, ...] = ()

    @property
    def constructed(self) -> bool:
        return bool(_first_byte(self.tag) & 0x20)

    def to_bytes(self) -> bytes:
        value = b"".join(c.to_bytes() for c in self.children) if self.children else self.value
        return _tag_bytes(self.tag) + _length_bytes(len(value)) + value

    def walk(self) -> Iterator[Tlv]:
        yield self
        for child in self.children:
            yield from child.walk()


def build(tag: int, value: bytes | list[Tlv]) -> Tlv:
    """A primitive (bytes) or constructed (list of children) element."""
    if isinstance(value, list):
        children = tuple(value)
        return Tlv(tag, b"".join(c.to_bytes() for c in children), children)
    return Tlv(tag, value)


def parse(data: bytes) -> list[Tlv]:
    """All elements in `data` (EMV padding bytes 00 / FF between elements are skipped)."""
    out: list[Tlv] = []
    pos = 0
    while pos < len(data):
        if data[pos] in (0x00, 0xFF):
            pos += 1
            continue
        tag, pos = read_tag(data, pos)
        length, pos = _read_length(data, pos)
        if pos + length > len(data):
            raise FrameTruncated(f"tag {tag:X} declares {length} bytes, {len(data) - pos} left")
        value = data[pos : pos + length]
        pos += length
        children = tuple(parse(value)) if _first_byte(tag) & 0x20 else ()
        out.append(Tlv(tag, value, children))
    return out


def find(elements: list[Tlv], tag: int) -> bytes | None:
    """Value of the first element with `tag`, searching nested elements depth-first."""
    for top in elements:
        for element in top.walk():
            if element.tag == tag:
                return element.value
    return None


def find_all(elements: list[Tlv], tag: int) -> list[Tlv]:
    return [e for top in elements for e in top.walk() if e.tag == tag]


def _first_byte(tag: int) -> int:
    return tag >> (8 * ((tag.bit_length() - 1) // 8)) if tag else 0


def read_tag(data: bytes, pos: int) -> tuple[int, int]:
    """The tag starting at `pos` and the position after it."""
    tag = data[pos]
    pos += 1
    if tag & 0x1F == 0x1F:
        while True:
            if pos >= len(data):
                raise FrameTruncated("tag runs past the end")
            tag = (tag << 8) | data[pos]
            pos += 1
            if not data[pos - 1] & 0x80:
                break
            if tag > 0xFFFFFF:
                raise FrameError("tag longer than 3 bytes")
    return tag, pos


def _read_length(data: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(data):
        raise FrameTruncated("length missing")
    first = data[pos]
    if first < 0x80:
        return first, pos + 1
    count = first & 0x7F
    if count == 0 or count > 2:
        raise FrameOversized(f"length form {first:02X} not allowed")
    if pos + 1 + count > len(data):
        raise FrameTruncated("length bytes run past the end")
    return int.from_bytes(data[pos + 1 : pos + 1 + count], "big"), pos + 1 + count


def _tag_bytes(tag: int) -> bytes:
    return tag.to_bytes(max(1, (tag.bit_length() + 7) // 8), "big")


def _length_bytes(length: int) -> bytes:
    if length > MAX_VALUE:
        raise FrameOversized(f"value of {length} bytes")
    if length < 0x80:
        return bytes([length])
    if length < 0x100:
        return bytes([0x81, length])
    return bytes([0x82]) + length.to_bytes(2, "big")
