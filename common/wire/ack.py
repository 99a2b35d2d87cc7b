"""Storage confirmations, cloud → terminal on ``cuntong/v1/t/<id>/ack``.

Ingest publishes one (QoS 0: a lost one only means the terminal sends again) after a flush
has committed to the database and the telemetry store has answered, naming the sequence
numbers of that terminal's messages it now holds (stored, or already stored before, or kept in
the dead-letter table). The terminal's spool deletes exactly those rows; anything unconfirmed
is sent again after a reconnect or after the agent's ``ack_timeout_s``. The broker's PUBACK no
longer ends a message's life on the terminal: a broker killed before it delivered or saved a
message cannot lose it.

Exact sequence numbers, not a "everything up to N" watermark: telemetry is split round robin
between ingest consumers (a shared subscription) and events travel on another link, so one
consumer's highest stored number says nothing about the numbers below it that another
consumer (or a broker that died) still holds. Runs of consecutive numbers travel as ranges::

    {"v": 1, "seqs": [[lo, hi], ...]}        inclusive, ascending, not overlapping
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from common.errors import WireError

VERSION = 1
#: Ranges one confirmation may carry (a flush holds at most a few thousand messages).
MAX_RANGES = 10_000
MAX_BYTES = 256 * 1024
_SEQ_MAX = 2**63 - 1


def ranges(seqs: Iterable[int]) -> tuple[tuple[int, int], ...]:
    """Sorted, de-duplicated ``seqs`` as inclusive runs of consecutive numbers."""
    out: list[tuple[int, int]] = []
    for seq in sorted(set(seqs)):
        if out and seq == out[-1][1] + 1:
            out[-1] = (out[-1][0], seq)
        else:
            out.append((seq, seq))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Stored:
    """The sequence numbers of one terminal's messages the cloud has stored."""

    ranges: tuple[tuple[int, int], ...]

    @classmethod
    def of(cls, seqs: Iterable[int]) -> Stored:
        return cls(ranges(seqs))

    def seqs(self) -> list[int]:
        return [s for lo, hi in self.ranges for s in range(lo, hi + 1)]

    def __contains__(self, seq: object) -> bool:
        return isinstance(seq, int) and any(lo <= seq <= hi for lo, hi in self.ranges)

    def __bytes__(self) -> bytes:
        body = {"v": VERSION, "seqs": [[lo, hi] for lo, hi in self.ranges]}
        return json.dumps(body, separators=(",", ":")).encode()

    to_bytes = __bytes__


def parse(payload: bytes) -> Stored:
    """Read a confirmation; ``WireError`` naming what is wrong with anything else."""
    if len(payload) > MAX_BYTES:
        raise WireError(f"ack of {len(payload)} bytes exceeds {MAX_BYTES}")
    try:
        body = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as err:
        raise WireError(f"ack is not JSON: {err}") from err
    if not isinstance(body, dict) or set(body) != {"v", "seqs"}:
        raise WireError("ack must be an object with exactly 'v' and 'seqs'")
    if body["v"] != VERSION:
        raise WireError(f"ack version {body['v']!r} is not {VERSION}")
    raw = body["seqs"]
    if not isinstance(raw, list) or len(raw) > MAX_RANGES:
        raise WireError(f"ack 'seqs' must be a list of at most {MAX_RANGES} ranges")
    out: list[tuple[int, int]] = []
    for item in raw:
        if (
            not isinstance(item, list)
            or len(item) != 2
            or not all(type(n) is int and 0 < n <= _SEQ_MAX for n in item)
        ):
            raise WireError(f"ack range {item!r} is not [lo, hi] of positive 64-bit integers")
        lo, hi = item
        if lo > hi or (out and lo <= out[-1][1]):
            raise WireError(f"ack range {item!r} is reversed, unsorted or overlapping")
        out.append((lo, hi))
    return Stored(tuple(out))
