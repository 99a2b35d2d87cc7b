"""The signalling gate's pure rules (``cloud.media.gate``) and where a grant's gate path
lies (``common.wire.call.absolute_janus_url``)."""

from __future__ import annotations

import pytest

from cloud.media import gate
from common.wire.call import CallError, absolute_janus_url


def message(request: str, room: str = "call-1", kind: str = "message") -> dict[str, object]:
    body = {"request": request, "room": room, "ptype": "subscriber"}
    return {"janus": kind, "token": "tok", "transaction": "t1", "body": body}


@pytest.mark.parametrize("request_name", ["join", "JOIN", "JoinAndConfigure"])
def test_a_join_is_read_whatever_its_case_as_videoroom_reads_it(request_name: str) -> None:
    attempt = gate.join_attempt(message(request_name, kind="MESSAGE"))
    assert attempt is not None
    assert (attempt.token, attempt.room, attempt.request) == (
        "tok", "call-1", request_name.lower(),
    )  # fmt: skip


@pytest.mark.parametrize(
    "msg",
    [message("configure"), message("join", kind="attach"), {"janus": "message"}, [], "join"],
)
def test_anything_else_passes_unread(msg: object) -> None:
    assert gate.join_attempt(msg) is None


def test_grants_carry_the_gate_path() -> None:
    assert gate.gate_path("janus-2") == "/media/janus/janus-2"
    assert gate.PATH.match("123/456") and not gate.PATH.match("../admin")


def test_a_gate_path_lies_on_the_cloud_the_participant_uses() -> None:
    path = gate.gate_path("janus-1")
    assert absolute_janus_url(path, "https://bank.example:8443") == (
        "https://bank.example:8443/media/janus/janus-1"
    )
    assert absolute_janus_url(path, "https://bank.example/cuntong/") == (
        "https://bank.example/cuntong/media/janus/janus-1"
    )
    direct = "http://10.0.0.12:8088/janus"
    assert absolute_janus_url(direct, None) == direct  # a configured URL is used as it is
    with pytest.raises(CallError, match="knows no cloud address"):
        absolute_janus_url(path, None)
    with pytest.raises(CallError, match="http\\(s\\) URL or a path"):
        absolute_janus_url("janus.example/janus", "https://bank.example")
