"""The storage confirmation (cloud → terminal): round trip, ranges, and refusals that say why."""

from __future__ import annotations

import pytest

from common.errors import WireError
from common.wire import ack

BIG = 1_795_611_623_000_000


def test_consecutive_numbers_travel_as_ranges_and_round_trip() -> None:
    stored = ack.Stored.of([BIG + 5, BIG + 1, BIG + 2, BIG + 3, BIG + 9, BIG + 2])
    assert stored.ranges == ((BIG + 1, BIG + 3), (BIG + 5, BIG + 5), (BIG + 9, BIG + 9))
    wire = bytes(stored)
    assert wire == (
        b'{"v":1,"seqs":[[%d,%d],[%d,%d],[%d,%d]]}'
        % (BIG + 1, BIG + 3, BIG + 5, BIG + 5, BIG + 9, BIG + 9)
    )
    again = ack.parse(wire)
    assert again == stored and bytes(again) == wire
    assert again.seqs() == [BIG + 1, BIG + 2, BIG + 3, BIG + 5, BIG + 9]
    assert BIG + 2 in again and BIG + 4 not in again


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (b"not json", "not JSON"),
        (b"[]", "exactly 'v' and 'seqs'"),
        (b'{"v":2,"seqs":[]}', "version"),
        (b'{"v":1,"seqs":[[1]]}', "[lo, hi]"),
        (b'{"v":1,"seqs":[[0,3]]}', "positive"),
        (b'{"v":1,"seqs":[[1,true]]}', "[lo, hi]"),
        (b'{"v":1,"seqs":[[5,3]]}', "reversed"),
        (b'{"v":1,"seqs":[[1,5],[4,8]]}', "overlapping"),
        (b'{"v":1,"seqs":[[1,%d]]}' % 2**63, "64-bit"),
        (b'{"v":1,"seqs":[]' + b" " * ack.MAX_BYTES + b"}", "exceeds"),
    ],
)
def test_garbage_is_refused_naming_the_problem(payload: bytes, why: str) -> None:
    with pytest.raises(WireError, match=why.replace("[", r"\[").replace("]", r"\]")):
        ack.parse(payload)
