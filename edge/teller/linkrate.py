"""The call's link rate from what the far end reports: pure, loss-based (as in GCC).

Every few seconds the publisher reads the receiver reports Janus sends back (fraction of
packets lost) and Janus's REMB ceiling. Heavy loss cuts the rate at once (near-total loss
is an outage: held), light loss holds it, a clean link grows it slowly back toward the
configured link rate. Loss counts only
above what the link is known to lose anyway (``expected_loss``, the terminal's
``link_loss``): a village link's steady 3% is not congestion, and with it counted the rate
never grew back after an outage cut it (3% sits in the hold band). The result feeds
``edge.vision.roi.encoder_settings`` (Opus rate, VP8 bounds, resolution and frame rate).
"""

from __future__ import annotations

FLOOR_KBPS = 120.0  # below this even the smallest rung stops being a conversation
HIGH_LOSS = 0.10
#: an interval that lost more than this had the link down (an outage), not congested: the
#: rate holds, and the intervals after it say whether the link came back congested
OUTAGE_LOSS = 0.5
LOW_LOSS = 0.02
GROWTH = 1.08
REFIT_CHANGE = 0.15  # re-fit the encoder only on a real change: each re-fit costs a keyframe


def next_rate(
    current_kbps: float,
    ceiling_kbps: float,
    loss: float,
    remb_kbps: float | None = None,
    expected_loss: float = 0.0,
) -> float:
    """The rate to use next, given the last interval's loss (0-1), Janus's REMB and the loss
    the link is known for."""
    if not 0 <= loss <= 1 or not 0 <= expected_loss < 1:
        raise ValueError("loss is a fraction between 0 and 1")
    loss = max(0.0, loss - expected_loss)
    if loss > OUTAGE_LOSS:
        rate = current_kbps
    elif loss > HIGH_LOSS:
        rate = current_kbps * (1 - 0.5 * loss)
    elif loss < LOW_LOSS:
        rate = current_kbps * GROWTH
    else:
        rate = current_kbps
    top = ceiling_kbps if remb_kbps is None else min(ceiling_kbps, remb_kbps)
    return max(FLOOR_KBPS, min(rate, top))


def worth_refit(old_kbps: float, new_kbps: float) -> bool:
    return abs(new_kbps - old_kbps) > REFIT_CHANGE * old_kbps
