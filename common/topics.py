"""The MQTT topic namespace, in one place.

Every terminal owns one subtree, ``cuntong/v1/t/<terminal_id>/``; the broker's ACLs (see
provisioning) give a terminal that subtree and nothing else.

=========================================  =========  ======  ==================================
topic                                      direction  QoS     payload
=========================================  =========  ======  ==================================
cuntong/v1/t/<id>/status                   T → C      1, ret  online/offline + versions; the
                                                              offline form is the last will
cuntong/v1/t/<id>/telemetry                T → C      1       health sample (envelope)
cuntong/v1/t/<id>/event                    T → C      1       business event (envelope)
cuntong/v1/t/<id>/cmd/<name>               C → T      1       command request (MQTT 5 response
                                                              topic + correlation data)
cuntong/v1/t/<id>/cmd-reply                T → C      1       command result
cuntong/v1/t/<id>/session                  T → C      1       the customer's teller-session
                                                              messages (request, cancel, ...)
cuntong/v1/t/<id>/desk                     C → T      1       the teller desk's messages to the
                                                              terminal (queued, connect, ended)
cuntong/v1/t/<id>/ack                      C → T      1       the sequence numbers the cloud has
                                                              stored (``common.wire.ack``); the
                                                              spool keeps a message until then
=========================================  =========  ======  ==================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

ROOT = "cuntong/v1/t"
#: Where the broker's refusal plugin reports a terminal's refused SUBSCRIBE
#: (``provisioning.brokerplugin``); cloud-only, outside every terminal's subtree.
BROKER_REFUSED = "cuntong/v1/broker/refused"
_TERMINAL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


class Channel(StrEnum):
    STATUS = "status"
    TELEMETRY = "telemetry"
    EVENT = "event"
    CMD = "cmd"
    CMD_REPLY = "cmd-reply"
    #: Live call signalling: not spooled, a request only makes sense while online.
    SESSION = "session"
    DESK = "desk"
    #: Storage confirmations: ingest publishes them after the database and the telemetry
    #: store have answered; only then does the terminal's spool forget the messages.
    ACK = "ack"


def valid_terminal_id(terminal_id: str) -> bool:
    """Terminal ids are safe as topic levels, file names and certificate common names."""
    return bool(_TERMINAL_ID.match(terminal_id))


def topic(terminal_id: str, channel: Channel, name: str | None = None) -> str:
    if not valid_terminal_id(terminal_id):
        raise ValueError(f"invalid terminal id {terminal_id!r}")
    base = f"{ROOT}/{terminal_id}/{channel.value}"
    if channel is Channel.CMD:
        if not name:
            raise ValueError("a command topic needs a command name")
        return f"{base}/{name}"
    return base


def command_filter(terminal_id: str) -> str:
    """What a terminal subscribes to: every command addressed to it."""
    return f"{topic(terminal_id, Channel.CMD, '+')}"


def subscription(channel: Channel, share_group: str | None = None) -> str:
    """Wildcard over all terminals; with a group, an MQTT 5 shared subscription."""
    suffix = f"{channel.value}/#" if channel is Channel.CMD else channel.value
    filt = f"{ROOT}/+/{suffix}"
    return f"$share/{share_group}/{filt}" if share_group else filt


@dataclass(frozen=True, slots=True)
class ParsedTopic:
    terminal_id: str
    channel: Channel
    name: str | None = None


def parse(topic_name: str) -> ParsedTopic:
    """Split a concrete topic into terminal id and channel; ValueError if it is not ours."""
    parts = topic_name.split("/")
    if len(parts) < 5 or "/".join(parts[:3]) != ROOT:
        raise ValueError(f"topic outside the namespace: {topic_name!r}")
    terminal_id, channel_name = parts[3], parts[4]
    if not valid_terminal_id(terminal_id):
        raise ValueError(f"invalid terminal id in topic: {topic_name!r}")
    try:
        channel = Channel(channel_name)
    except ValueError:
        raise ValueError(f"unknown channel in topic: {topic_name!r}") from None
    if channel is Channel.CMD:
        if len(parts) != 6 or not parts[5]:
            raise ValueError(f"command topic needs exactly one name level: {topic_name!r}")
        return ParsedTopic(terminal_id, channel, parts[5])
    if len(parts) != 5:
        raise ValueError(f"unexpected extra levels in topic: {topic_name!r}")
    return ParsedTopic(terminal_id, channel)
