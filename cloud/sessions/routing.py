"""Skill-based routing of waiting customers to tellers (pure; time is an argument).

The ``Board`` holds the live queue and the tellers; the cloud service that owns it calls
its methods with the current time (seconds on one clock) and acts on what they return.

Order of the queue. Each request gets a *rank* = arrival time minus a head start:
high-risk business (suspected fraud, card loss) 600 s, elderly customer 180 s, a
customer transferred by a teller 300 s, summed when several apply. Lower rank is served
first. This is FreeSWITCH ``mod_callcenter``'s "score grows one per second waited, plus a
base score": priority customers jump ahead, yet an ordinary customer who has waited
longer than the head start is not starved.

Choice of teller. Among the tellers who qualify for the request in its current bullseye
ring (see ``skills``), are ``available``, hold no offer and are not on a no-answer hold,
the one idle longest is offered the call (Amazon Connect's and TaskRouter's default).
A ring that no logged-in teller could serve is skipped at once (TaskRouter's
``skip_if: workers.available == 0``), so a request does not sit out a ring for nobody.

Offers. An offer expires after ``offer_timeout``. A declined or expired offer puts the
request back at its old place; that teller is not offered the same request again for
``reoffer_cooldown``. An unanswered offer also holds the teller back for
``no_answer_delay``, and ``max_missed`` unanswered offers in a row put them on break
(mod_callcenter's ``max-no-answer``): they have probably left the desk.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from cloud.sessions.errors import RoutingError
from cloud.sessions.skills import (
    DEFAULT_RINGS,
    LANGUAGES,
    Business,
    Language,
    Ring,
    Skills,
    business_table,
    check_rings,
    qualifies,
)


class TellerState(StrEnum):
    AVAILABLE = "available"
    BUSY = "busy"
    WRAP_UP = "wrap-up"
    BREAK = "break"
    OFFLINE = "offline"


#: Tellers who count as on duty when deciding whether a ring has anyone to serve it.
ON_DUTY = frozenset({TellerState.AVAILABLE, TellerState.BUSY, TellerState.WRAP_UP})


@dataclass(frozen=True, slots=True)
class Policy:
    rings: tuple[Ring, ...] = DEFAULT_RINGS
    offer_timeout: float = 20.0
    reoffer_cooldown: float = 60.0
    no_answer_delay: float = 15.0
    max_missed: int = 3
    #: Wrap-up ends by itself after this long (the teller can end it sooner).
    wrap_up_limit: float = 120.0
    high_risk_head_start: float = 600.0
    elderly_head_start: float = 180.0
    #: A customer handed on by a teller has already waited once; do not send them to the back.
    transfer_head_start: float = 300.0
    businesses: Mapping[str, Business] = field(default_factory=business_table)
    languages: Mapping[str, Language] = field(default_factory=lambda: LANGUAGES)

    def __post_init__(self) -> None:
        check_rings(self.rings)

    def head_start(self, business: str, elderly: bool, transferred: bool = False) -> float:
        risky = self.businesses[business].high_risk
        return (
            risky * self.high_risk_head_start
            + elderly * self.elderly_head_start
            + transferred * self.transfer_head_start
        )


@dataclass(slots=True)
class Teller:
    id: str
    skills: Skills
    state: TellerState = TellerState.OFFLINE
    state_since: float = 0.0
    #: When the teller last became available; smallest = idle longest.
    idle_since: float = 0.0
    #: No offers before this time (after an unanswered offer).
    hold_until: float = 0.0
    missed: int = 0
    #: (business, language, ring) -> qualifies; valid because skills never change on a board.
    fit: dict[tuple[str, str, int], bool] = field(default_factory=dict, repr=False)


@dataclass(slots=True)
class Request:
    id: str
    business: str
    language: str
    arrived: float
    elderly: bool = False
    rank: float = 0.0
    seq: int = 0
    #: teller id -> time until which that teller is not offered this request again.
    excluded: dict[str, float] = field(default_factory=dict)
    offers: int = 0

    @property
    def key(self) -> tuple[float, int]:
        return (self.rank, self.seq)


@dataclass(frozen=True, slots=True)
class Offer:
    request_id: str
    teller_id: str
    at: float
    expires: float
    ring: int


@dataclass
class Board:
    """The queue, the tellers and the open offers. Not thread-safe: one owner task."""

    policy: Policy = field(default_factory=Policy)
    tellers: dict[str, Teller] = field(default_factory=dict)
    requests: dict[str, Request] = field(default_factory=dict)
    offers: dict[str, Offer] = field(default_factory=dict)  # by request id
    _waiting: list[tuple[tuple[float, int], str]] = field(default_factory=list)
    _offer_of_teller: dict[str, str] = field(default_factory=dict)
    _seq: Iterator[int] = field(default_factory=itertools.count)
    #: (business, language, ring the wait entitles to) -> ring actually used; cleared when
    #: a teller comes on or goes off duty, the only thing that changes the answer.
    _staffed_ring: dict[tuple[str, str, int], int] = field(default_factory=dict)

    # -- tellers -------------------------------------------------------------------------

    def add_teller(self, teller_id: str, skills: Skills, now: float) -> Teller:
        if teller_id in self.tellers:
            raise RoutingError(f"teller {teller_id} already on the board")
        teller = Teller(teller_id, skills, TellerState.OFFLINE, now, now)
        self.tellers[teller_id] = teller
        return teller

    def set_skills(self, teller_id: str, skills: Skills, now: float) -> Teller:
        """Give a teller new skills (adding them, off duty, if not on the board yet). An
        open offer or a call goes on; the new skills count from the next decision."""
        teller = self.tellers.get(teller_id)
        if teller is None:
            return self.add_teller(teller_id, skills, now)
        teller.skills = skills
        teller.fit.clear()
        self._staffed_ring.clear()
        return teller

    def remove_teller(self, teller_id: str, now: float) -> None:
        """Take a teller off the board (to change their skills, re-add them)."""
        self.set_state(teller_id, TellerState.OFFLINE, now)
        del self.tellers[teller_id]

    def set_state(self, teller_id: str, state: TellerState, now: float) -> Offer | None:
        """Change a teller's state; returns the offer cancelled by leaving, if any."""
        teller = self._teller(teller_id)
        cancelled = None
        if state is not TellerState.AVAILABLE and teller_id in self._offer_of_teller:
            cancelled = self._withdraw(self._offer_of_teller[teller_id], now, missed=False)
        if (state in ON_DUTY) != (teller.state in ON_DUTY):
            self._staffed_ring.clear()
        if state is TellerState.AVAILABLE and teller.state is not TellerState.AVAILABLE:
            teller.idle_since = now
            teller.missed = 0
        teller.state, teller.state_since = state, now
        return cancelled

    def hang_up(self, teller_id: str, now: float) -> None:
        """The call ended: the teller goes to wrap-up."""
        teller = self._teller(teller_id)
        if teller.state is not TellerState.BUSY:
            raise RoutingError(f"teller {teller_id} is {teller.state}, not busy")
        self.set_state(teller_id, TellerState.WRAP_UP, now)

    def tick(self, now: float) -> tuple[list[Offer], list[str]]:
        """Expire overdue offers and end overlong wrap-ups; returns both lists."""
        expired = [o for o in self.offers.values() if o.expires <= now]
        for offer in expired:
            self._withdraw(offer.request_id, now, missed=True)
        ended = [
            t.id
            for t in self.tellers.values()
            if t.state is TellerState.WRAP_UP and now - t.state_since >= self.policy.wrap_up_limit
        ]
        for teller_id in ended:
            self.set_state(teller_id, TellerState.AVAILABLE, now)
        return expired, ended

    # -- requests ------------------------------------------------------------------------

    def enqueue(
        self,
        request_id: str,
        business: str,
        language: str,
        now: float,
        elderly: bool = False,
        transferred: bool = False,
    ) -> Request:
        if request_id in self.requests:
            raise RoutingError(f"request {request_id} already queued")
        if business not in self.policy.businesses:
            raise RoutingError(f"unknown business type {business!r}")
        if language not in self.policy.languages:
            raise RoutingError(f"unknown language {language!r}")
        req = Request(request_id, business, language, now, elderly)
        req.rank = now - self.policy.head_start(business, elderly, transferred)
        req.seq = next(self._seq)
        self.requests[request_id] = req
        bisect.insort(self._waiting, (req.key, request_id))
        return req

    def restore(self, req: Request) -> Request:
        """Put back a request a previous desk had on its board, with its arrival, rank and
        sequence number (so it keeps its place); requests enqueued later come after it."""
        if req.id in self.requests:
            raise RoutingError(f"request {req.id} already queued")
        if req.business not in self.policy.businesses:
            raise RoutingError(f"unknown business type {req.business!r}")
        if req.language not in self.policy.languages:
            raise RoutingError(f"unknown language {req.language!r}")
        self.requests[req.id] = req
        bisect.insort(self._waiting, (req.key, req.id))
        self._seq = itertools.count(max(next(self._seq), req.seq + 1))
        return req

    def restore_teller(
        self,
        teller_id: str,
        state: TellerState,
        state_since: float,
        idle_since: float,
        hold_until: float | None = None,
        missed: int | None = None,
    ) -> None:
        """Give a teller on the board the state a previous desk had them in (and, when
        given, their no-answer hold and count of unanswered offers in a row)."""
        teller = self._teller(teller_id)
        if (state in ON_DUTY) != (teller.state in ON_DUTY):
            self._staffed_ring.clear()
        teller.state, teller.state_since, teller.idle_since = state, state_since, idle_since
        if hold_until is not None:
            teller.hold_until = hold_until
        if missed is not None:
            teller.missed = missed

    def abandon(self, request_id: str, now: float) -> None:
        """The customer left: drop the request and release any teller it was offered to."""
        if request_id in self.offers:
            self._withdraw(request_id, now, missed=False)
        req = self._request(request_id)
        self._unwait(req)
        del self.requests[request_id]

    def accept(self, request_id: str, now: float) -> Offer:
        """The offered teller took the call: the request leaves the board, the teller is busy."""
        offer = self.offers.pop(request_id, None)
        if offer is None:
            raise RoutingError(f"request {request_id} has no open offer")
        del self._offer_of_teller[offer.teller_id]
        del self.requests[request_id]
        teller = self.tellers[offer.teller_id]
        teller.state, teller.state_since, teller.missed = TellerState.BUSY, now, 0
        return offer

    def decline(self, request_id: str, now: float) -> Offer:
        """The offered teller refused: the request returns to its place, minus that teller."""
        if request_id not in self.offers:
            raise RoutingError(f"request {request_id} has no open offer")
        return self._withdraw(request_id, now, missed=False)

    # -- the decision --------------------------------------------------------------------

    def dispatch(self, now: float) -> list[Offer]:
        """Offer waiting requests, best-ranked first, to the longest-idle qualified tellers."""
        free = sorted(
            (
                t
                for t in self.tellers.values()
                if t.state is TellerState.AVAILABLE
                and t.id not in self._offer_of_teller
                and t.hold_until <= now
            ),
            key=lambda t: (t.idle_since, t.id),
        )
        if not free:
            return []
        made: list[Offer] = []
        for _key, request_id in self._waiting:
            req = self.requests[request_id]
            ring_no = self.ring_of(req, now)
            for i, teller in enumerate(free):
                if req.excluded and req.excluded.get(teller.id, 0.0) > now:
                    continue
                if self.fits(teller, req.business, req.language, ring_no):
                    made.append(
                        Offer(req.id, teller.id, now, now + self.policy.offer_timeout, ring_no)
                    )
                    del free[i]
                    break
            if not free:
                break
        for offer in made:
            self._unwait(self.requests[offer.request_id])
            self.requests[offer.request_id].offers += 1
            self.offers[offer.request_id] = offer
            self._offer_of_teller[offer.teller_id] = offer.request_id
        return made

    def offer_to(self, teller_id: str) -> Offer | None:
        """The open offer a teller holds, if any."""
        request_id = self._offer_of_teller.get(teller_id)
        return None if request_id is None else self.offers[request_id]

    def waiting(self) -> Iterable[Request]:
        """Requests not currently offered, in service order."""
        return (self.requests[rid] for _key, rid in self._waiting)

    # -- internals -----------------------------------------------------------------------

    def _teller(self, teller_id: str) -> Teller:
        try:
            return self.tellers[teller_id]
        except KeyError:
            raise RoutingError(f"unknown teller {teller_id}") from None

    def _request(self, request_id: str) -> Request:
        try:
            return self.requests[request_id]
        except KeyError:
            raise RoutingError(f"unknown request {request_id}") from None

    def _unwait(self, req: Request) -> None:
        i = bisect.bisect_left(self._waiting, (req.key, req.id))
        if i < len(self._waiting) and self._waiting[i][1] == req.id:
            del self._waiting[i]

    def _withdraw(self, request_id: str, now: float, missed: bool) -> Offer:
        """Close an open offer: the request goes back to its old place in the queue."""
        offer = self.offers.pop(request_id)
        del self._offer_of_teller[offer.teller_id]
        req = self.requests[request_id]
        req.excluded[offer.teller_id] = now + self.policy.reoffer_cooldown
        bisect.insort(self._waiting, (req.key, req.id))
        if missed:
            teller = self.tellers[offer.teller_id]
            teller.missed += 1
            teller.hold_until = now + self.policy.no_answer_delay
            if teller.missed >= self.policy.max_missed:
                self.set_state(teller.id, TellerState.BREAK, now)
        return offer

    def fits(self, teller: Teller, business: str, language: str, ring_no: int) -> bool:
        """Does the teller qualify for (business, language) in ring ``ring_no``? Memoised."""
        key = (business, language, ring_no)
        hit = teller.fit.get(key)
        if hit is None:
            pol = self.policy
            ring = pol.rings[ring_no]
            hit = qualifies(teller.skills, business, language, ring, pol.businesses, pol.languages)
            teller.fit[key] = hit
        return hit

    def qualified_on_duty(self, business: str, language: str, ring_no: int) -> list[Teller]:
        """On-duty tellers (available, busy or in wrap-up) who qualify in that ring."""
        return [
            t
            for t in self.tellers.values()
            if t.state in ON_DUTY and self.fits(t, business, language, ring_no)
        ]

    def ring_of(self, req: Request, now: float) -> int:
        """The request's ring at ``now``: by time waited, skipping rings nobody on duty fits."""
        waited = now - req.arrived
        rings = self.policy.rings
        base = max(i for i, r in enumerate(rings) if r.opens_after <= waited)
        key = (req.business, req.language, base)
        ring_no = self._staffed_ring.get(key)
        if ring_no is None:
            ring_no = len(rings) - 1
            for candidate in range(base, len(rings)):
                if any(
                    t.state in ON_DUTY and self.fits(t, req.business, req.language, candidate)
                    for t in self.tellers.values()
                ):
                    ring_no = candidate
                    break
            self._staffed_ring[key] = ring_no
        return ring_no
