"""What the waiting customer is told: place in the queue and expected wait (pure).

Handle times are learned from finished sessions (connected → closed, wrap-up included;
see ``state.handle_time``), as a rolling mean per business type over the last
``window`` calls, starting from a prior until ``min_samples`` calls have been seen. The
desk keeps what it has learned in the database (``learned``), and a desk taking over
starts from it (``restore``), so the expected wait it announces does not jump.

The wait is estimated by playing the queue forward: every on-duty teller who qualifies for
this request gets a "free at" time (now if available; the expected end of the current call
or wrap-up otherwise); each request ahead that competes for those tellers takes the
earliest free one for its business's mean handle time; this request starts when the next
one frees up. It ignores future priority arrivals and abandonment, so it is a fair guess,
not a promise; the UI should round it.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass, field

from cloud.sessions.errors import RoutingError
from cloud.sessions.routing import Board, TellerState

#: A call that has run past its mean is assumed to need at least this share of a mean more.
_TAIL_SHARE = 0.25


@dataclass
class HandleTimes:
    prior: float = 300.0
    window: int = 50
    min_samples: int = 5
    _seen: dict[str, deque[float]] = field(default_factory=dict)

    def observe(self, business: str, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"negative handle time {seconds}")
        self._seen.setdefault(business, deque(maxlen=self.window)).append(seconds)

    def learned(self) -> dict[str, tuple[float, ...]]:
        """What has been seen, per business (oldest first): what a desk keeps."""
        return {business: tuple(seen) for business, seen in self._seen.items()}

    def restore(self, business: str, seconds: list[float] | tuple[float, ...]) -> None:
        """Take over what a previous desk had learned for ``business`` (oldest first; the
        last ``window`` are kept)."""
        if any(s < 0 for s in seconds):
            raise ValueError(f"negative handle time in {list(seconds)}")
        self._seen[business] = deque(seconds, maxlen=self.window)

    def mean(self, business: str) -> float:
        seen = self._seen.get(business)
        if not seen or len(seen) < self.min_samples:
            return self.prior
        return sum(seen) / len(seen)


@dataclass(frozen=True, slots=True)
class QueueStatus:
    #: 1 = next to be served among requests competing for the same tellers.
    position: int
    #: Seconds; None when no teller on duty can serve this request at all.
    expected_wait: float | None
    #: Bullseye ring the request is in now (0 = exact skills).
    ring: int


def queue_status(board: Board, request_id: str, now: float, times: HandleTimes) -> QueueStatus:
    """Position and expected wait of one waiting (or currently offered) request."""
    req = board.requests.get(request_id)
    if req is None:
        raise RoutingError(f"unknown request {request_id}")
    if request_id in board.offers:
        return QueueStatus(0, 0.0, board.offers[request_id].ring)
    ring_no = board.ring_of(req, now)
    pool = board.qualified_on_duty(req.business, req.language, ring_no)
    pol = board.policy

    ahead = []
    for other in board.waiting():
        if other.id == request_id:
            break
        other_ring = board.ring_of(other, now)
        if any(board.fits(t, other.business, other.language, other_ring) for t in pool):
            ahead.append(other)
    if not pool:
        return QueueStatus(len(ahead) + 1, None, ring_no)

    free_at = []
    for t in pool:
        if t.state is TellerState.AVAILABLE:
            at = max(now, t.hold_until)
            offer = board.offer_to(t.id)
            if offer is not None:  # an offer out: likely to become a call
                at = now + times.mean(board.requests[offer.request_id].business)
        elif t.state is TellerState.BUSY:
            # The teller's current business is not on the board; the request's mean stands in.
            mean = times.mean(req.business)
            at = max(t.state_since + mean, now + _TAIL_SHARE * mean)
        else:  # wrap-up
            at = max(t.state_since + pol.wrap_up_limit, now)
        free_at.append(at)
    heapq.heapify(free_at)
    for other in ahead:
        start = heapq.heappop(free_at)
        heapq.heappush(free_at, start + times.mean(other.business))
    return QueueStatus(len(ahead) + 1, free_at[0] - now, ring_no)
