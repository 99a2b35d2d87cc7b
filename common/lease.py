"""Leadership by lease, the pure part: how long a leader may act, and who is acting now.

Several API replicas share one database; the cloud's singletons (the command sender, the
rollout engine, alerting, the teller desk with its archiver, reconcilers) must run on one
of them only. The replica that holds a lease row in the database leads; the row carries an
expiry (the database's clock) and an epoch, a fencing token bumped at every change of hands
(``cloud.lease`` is the database shell).

``Tenure`` is one leader's term as that replica sees it: the epoch it won, and until when
(on its own monotonic clock) it may act. A renewal sent at ``started`` moves the database's
expiry to at least ``started + ttl`` (the database reads its clock after we send), so a
replica that stops acting at ``started + ttl`` by its own clock has stopped before any
standby can take the lease. A paused process (SIGSTOP, a long GC, a frozen VM) wakes with
its monotonic clock moved on, so ``held`` is already false: that is what keeps it from
acting on a lease it has lost before its renewal loop notices.

``CURRENT`` is the tenure of the code running now: the leader's tasks run inside it (each
task copies the context it was created in), so ``acting(now)`` lets any loop of a singleton
skip its beat once the term is over (``common.periodic.run_every`` asks it before every
beat), and a write can be fenced with the epoch (``cloud.lease.fenced``).
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

__all__ = ["CURRENT", "Tenure", "acting"]


@dataclass
class Tenure:
    name: str
    holder: str
    epoch: int
    #: Monotonic time after which this holder must not act (unless renewed).
    valid_until: float

    def held(self, now: float) -> bool:
        return now < self.valid_until

    def renewed(self, started: float, ttl_s: float) -> None:
        """A renewal sent at ``started`` (monotonic) succeeded."""
        self.valid_until = max(self.valid_until, started + ttl_s)

    def lapse(self) -> None:
        """The lease is lost (a renewal was refused): stop acting at once."""
        self.valid_until = float("-inf")


#: The tenure the running code acts under; None outside any leader's term.
CURRENT: ContextVar[Tenure | None] = ContextVar("cuntong_lease_tenure", default=None)


def acting(now: float) -> bool:
    """May the running code act? Yes outside a term (no lease in play), or inside one that
    still holds at ``now`` (monotonic)."""
    tenure = CURRENT.get()
    return tenure is None or tenure.held(now)
