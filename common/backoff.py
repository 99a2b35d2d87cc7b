"""Reconnect delays: exponential backoff with full jitter.

Full jitter (a uniform draw between zero and the exponential ceiling) spreads out the
reconnect storm when a county's 4G cell comes back and a thousand terminals retry at once.
Pure: the random draw is passed in.
"""

from __future__ import annotations


def ceiling(attempt: int, base_s: float, cap_s: float) -> float:
    """Upper bound of the delay before reconnect attempt number ``attempt`` (0-based)."""
    if attempt < 0:
        raise ValueError("attempt must be >= 0")
    # Exponent capped so 2**attempt cannot overflow on a terminal offline for weeks.
    return min(cap_s, base_s * 2 ** min(attempt, 32))


def delay(attempt: int, base_s: float, cap_s: float, draw: float) -> float:
    """Full-jitter delay: ``draw`` is a uniform random number in [0, 1)."""
    if not 0.0 <= draw < 1.0:
        raise ValueError("draw must be in [0, 1)")
    return draw * ceiling(attempt, base_s, cap_s)


def next_attempt(attempt: int, up_for_s: float | None, stable_s: float) -> int:
    """The attempt number after a link drop (the flap guard).

    ``up_for_s`` is how long the link had stayed up before it dropped (None: it never came
    up). Only a link that stayed up ``stable_s`` starts the backoff over; a link that
    connects and drops again at once keeps climbing, so a flapping terminal slows down
    instead of hammering the broker at the base delay.
    """
    if up_for_s is not None and up_for_s >= stable_s:
        return 0
    return attempt + 1
