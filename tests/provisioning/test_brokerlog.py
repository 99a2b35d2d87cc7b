"""Refusals read from Mosquitto's log (pure). The lines are the ones Mosquitto 2.0.11
wrote with ``REFUSAL_LOG`` for a dynamic-security client (captured; see the module)."""

from __future__ import annotations

from provisioning.brokerlog import Refusal, RefusalLog

CAPTURED = """\
1796524057: Sending CONNACK to t1 (0, 0)
1796524057: Received SUBSCRIBE from t1
1796524057: \town/# (QoS 0)
1796524057: t1 0 own/#
1796524057: \tother/# (QoS 0)
1796524057: \t$share/g/x/# (QoS 0)
1796524057: Sending SUBACK to t1
1796524058: Received DISCONNECT from t1
1796524058: Sending CONNACK to t1p (0, 0)
1796524058: Denied PUBLISH from t1p (d0, q1, r0, m1, 'own/x', ... (2 bytes))
1796524058: Sending PUBACK to t1p (m1, rc135)
1796524058: Received DISCONNECT from t1p
"""


def refusals(text: str) -> list[Refusal]:
    log = RefusalLog()
    return [r for line in text.splitlines() for r in log.feed(line)]


def test_refused_filters_and_publishes_are_found_granted_ones_are_not() -> None:
    assert refusals(CAPTURED) == [
        Refusal("t1", "subscribe", "other/#"),
        Refusal("t1", "subscribe", "$share/g/x/#"),
        Refusal("t1p", "publish", "own/x"),
    ]


def test_a_last_refused_filter_closes_at_the_suback_and_grants_match_client_and_filter() -> None:
    text = (
        "Received SUBSCRIBE from SX-1\n"
        "\ta/# (QoS 1)\n"
        "SX-2 1 a/#\n"  # another client's grant line does not grant SX-1's filter
        "Sending PUBLISH to SX-3 (d0, q0, r1, m0, 'a/b', ... (1 bytes))\n"
        "Sending SUBACK to SX-1\n"
        "Received SUBSCRIBE from SX-1\n"
        "\tb/# (QoS 1)\n"
        "SX-1 1 b/#\n"
        "Sending SUBACK to SX-1\n"
    )
    assert refusals(text) == [Refusal("SX-1", "subscribe", "a/#")]
