import json
from typing import Any

from edge.commands import dispatch


async def _echo(args: dict[str, Any]) -> dict[str, Any]:
    if "boom" in args:
        raise ValueError("bad argument boom")
    return {"echo": args}


async def test_known_command_runs_and_unknown_is_answered_with_an_error() -> None:
    handlers = {"echo": _echo}
    ok = await dispatch(handlers, "echo", b'{"a": 1}')
    assert ok.ok and ok.result == {"echo": {"a": 1}}
    unknown = await dispatch(handlers, "reboot", b"{}")
    assert not unknown.ok and unknown.result["known"] == ["echo"]
    assert json.loads(unknown.to_bytes())["ok"] is False


async def test_bad_arguments_get_an_error_reply_not_an_exception() -> None:
    handlers = {"echo": _echo}
    assert not (await dispatch(handlers, "echo", b"not json")).ok
    assert not (await dispatch(handlers, "echo", b"[1]")).ok
    failed = await dispatch(handlers, "echo", b'{"boom": 1}')
    assert failed.result == {"error": "bad argument boom"}
