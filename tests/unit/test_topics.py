import pytest

from common import topics
from common.topics import Channel


def test_topic_round_trips_through_parse() -> None:
    for channel in (Channel.STATUS, Channel.TELEMETRY, Channel.EVENT, Channel.CMD_REPLY):
        parsed = topics.parse(topics.topic("SX-00001", channel))
        assert (parsed.terminal_id, parsed.channel, parsed.name) == ("SX-00001", channel, None)
    cmd = topics.parse(topics.topic("SX-00001", Channel.CMD, "ping"))
    assert (cmd.channel, cmd.name) == (Channel.CMD, "ping")


@pytest.mark.parametrize(
    "bad",
    [
        "other/v1/t/SX-1/telemetry",
        "cuntong/v1/t/SX-1/nope",
        "cuntong/v1/t/SX 1/telemetry",
        "cuntong/v1/t/SX-1/telemetry/extra",
        "cuntong/v1/t/SX-1/cmd",
        "cuntong/v1/t/+/telemetry",
        "cuntong/v1/t",
    ],
)
def test_parse_refuses_topics_outside_the_namespace(bad: str) -> None:
    with pytest.raises(ValueError):
        topics.parse(bad)


def test_terminal_ids_that_would_break_topics_are_refused() -> None:
    for bad in ("", "a/b", "a+b", "#", "x" * 65, "-leading"):
        with pytest.raises(ValueError):
            topics.topic(bad, Channel.TELEMETRY)


def test_shared_subscription_and_command_filter() -> None:
    assert topics.subscription(Channel.TELEMETRY, "ingest") == (
        "$share/ingest/cuntong/v1/t/+/telemetry"
    )
    assert topics.subscription(Channel.STATUS) == "cuntong/v1/t/+/status"
    assert topics.command_filter("T1") == "cuntong/v1/t/T1/cmd/+"
