"""An ID read made before queueing (先刷身份证): what the desk accepts and what it refuses.

The read is made by the terminal's own ``id_card_read`` handler over the serial ID-card
simulator and signed by ``edge.steps`` for a before-queue request, exactly as
``TellerClient.read_id_first`` does; the checks are the cloud's (``check_before_queue``)
and the call codec's.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from cloud.workflow.device import BEFORE_QUEUE_MAX_AGE, check_before_queue
from cloud.workflow.errors import StepResultRefused
from common.wire import call as wire
from edge.steps.sign import Done
from firmware_adapters.idcard.simulator import sample_card
from provisioning import ca as ca_lib
from tests.steps_rig import Terminal, enrol, id_reader

NOW = dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.UTC)


async def _read(tmp_path: Path) -> Done:
    async with id_reader(tmp_path, sample_card(1)) as handler:
        request_id = wire.new_request_id()
        request = wire.StepRequest(
            wire.before_queue_session(request_id), "id_card_read", request_id, {}
        )
        return await handler(request)


def _signed(device: Terminal, done: Done, at: dt.datetime) -> wire.StepResult:
    request_id = wire.new_request_id()
    request = wire.StepRequest(
        wire.before_queue_session(request_id), "id_card_read", request_id, {}
    )
    return device.sign(request, done, at)


async def test_a_fresh_read_for_its_request_verifies_and_rides_the_request(
    tmp_path: Path,
) -> None:
    authority = ca_lib.load_or_create(tmp_path / "ca", NOW)
    device = enrol(authority, "SX-BQ-01", NOW)
    result = _signed(device, await _read(tmp_path), NOW - dt.timedelta(minutes=3))
    request = wire.Request(result.nonce, "card_loss", id_read=result)
    again = wire.Request.parse(request.to_bytes())
    assert again == request
    verified = check_before_queue(
        again.id_read,  # type: ignore[arg-type]
        request_id=again.request_id,
        terminal_id="SX-BQ-01",
        used=set(),
        issuers=(authority.issuing,),
        now=NOW,
    )
    assert verified.masked["name"] == "张*国" and verified.outcome == "passed"
    assert verified.full is not None and verified.full["id_number"].endswith(
        verified.masked["id_number"][-4:]
    )


async def test_replays_and_foreign_reads_are_refused_by_name(tmp_path: Path) -> None:
    authority = ca_lib.load_or_create(tmp_path / "ca", NOW)
    device = enrol(authority, "SX-BQ-01", NOW)
    done = await _read(tmp_path)
    fresh = _signed(device, done, NOW)
    issuers = (authority.issuing,)

    def check(result: wire.StepResult, request_id: str, **kw: object) -> None:
        args: dict[str, object] = {"terminal_id": "SX-BQ-01", "used": set(), "now": NOW}
        check_before_queue(result, request_id=request_id, issuers=issuers, **(args | kw))  # type: ignore[arg-type]

    # an old read (replayed after the desk forgot its request ids)
    old = _signed(device, done, NOW - BEFORE_QUEUE_MAX_AGE - dt.timedelta(seconds=5))
    with pytest.raises(StepResultRefused, match="stale ID read"):
        check(old, old.nonce)
    # the same request id again (the desk has a session for it)
    with pytest.raises(StepResultRefused, match="replayed nonce"):
        check(fresh, fresh.nonce, used={fresh.nonce})
    # moved to another request: the codec will not make it, the check refuses it
    other = wire.new_request_id()
    with pytest.raises(wire.CallError, match="not made for this request"):
        wire.Request(other, "card_loss", id_read=fresh)
    with pytest.raises(StepResultRefused, match="another session"):
        check(fresh, other)
    # signed by another terminal than the one that sent the request
    with pytest.raises(StepResultRefused, match="unknown signer"):
        check(fresh, fresh.nonce, terminal_id="SX-BQ-02")
    # a foreign CA
    stranger = enrol(ca_lib.load_or_create(tmp_path / "other-ca", NOW), "SX-BQ-01", NOW)
    foreign = _signed(stranger, done, NOW)
    with pytest.raises(StepResultRefused, match="not issued by our CA"):
        check(foreign, foreign.nonce)
    # an in-call result (session, desk's nonce) cannot pass as a before-queue read
    in_call = device.sign(
        wire.StepRequest("a" * 32, "id_card_read", wire.new_nonce(), {}), done, NOW
    )
    with pytest.raises(StepResultRefused):
        check(in_call, in_call.nonce)
    # a signed time far ahead of the cloud's clock
    ahead = _signed(device, done, NOW + dt.timedelta(minutes=30))
    with pytest.raises(StepResultRefused, match="ahead of the cloud's clock"):
        check(ahead, ahead.nonce)
