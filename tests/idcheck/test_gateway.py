"""The identity client against the real gateway simulator process: every outcome, refusals,
and a down or hanging service that must not hold the caller past its bound."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from common import procs
from cuntong.servers.idcheck import IdentityGateway
from firmware_adapters.idcard.simulator import sample_card
from idcheck import (
    OUTCOMES,
    AnswerInvalid,
    IdentityClient,
    IdentityServiceDown,
    Outcome,
    RequestRefused,
    signing,
)

KEY = b"test-shared-key-for-the-gateway"
LIVING, OTHER, DEAD = sample_card(0).text, sample_card(1).text, sample_card(2).text
IDENTITIES = [
    {"id_number": LIVING.id_number, "name": LIVING.name, "status": "normal"},
    {"id_number": OTHER.id_number, "name": OTHER.name, "status": "normal"},
    {"id_number": DEAD.id_number, "name": DEAD.name, "status": "deceased"},
]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IdentityGateway]:
    gw = IdentityGateway(
        procs.free_port(), tmp_path_factory.mktemp("idcheck"), KEY, IDENTITIES, hang_s=30
    ).start()
    try:
        yield gw
    finally:
        gw.stop()


def client(gw: IdentityGateway, key: bytes = KEY, **kw: float) -> IdentityClient:
    return IdentityClient(gw.url, key, "terminal-0042", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "id_number", "outcome", "words"),
    [
        (LIVING.name, LIVING.id_number, Outcome.MATCH, "一致"),
        ("王小二", LIVING.id_number, Outcome.NAME_MISMATCH, "不一致"),
        (LIVING.name, "110105194912310021", Outcome.NOT_FOUND, "库中无此号"),
        (DEAD.name, DEAD.id_number, Outcome.DECEASED, "已死亡"),
    ],
)
async def test_each_outcome_from_the_real_gateway(
    gateway: IdentityGateway, name: str, id_number: str, outcome: Outcome, words: str
) -> None:
    answer = await client(gateway).check("sess-abc", name, id_number)
    assert (answer.outcome, answer.result_text) == (outcome, words)
    assert answer.session_id == "sess-abc"
    assert len(answer.query_id) == 32
    assert OUTCOMES[outcome].passes is (outcome is Outcome.MATCH)


async def test_two_queries_get_distinct_query_ids(gateway: IdentityGateway) -> None:
    c = client(gateway)
    a = await c.check("sess-1", LIVING.name, LIVING.id_number)
    b = await c.check("sess-2", LIVING.name, LIVING.id_number)
    assert a.query_id != b.query_id and (a.session_id, b.session_id) == ("sess-1", "sess-2")


async def test_a_bad_signature_and_a_stale_timestamp_are_refused(
    gateway: IdentityGateway,
) -> None:
    with pytest.raises(RequestRefused) as bad:
        await client(gateway, key=b"wrong key").check("s", LIVING.name, LIVING.id_number)
    assert bad.value.reason == "bad_signature"
    stale = IdentityClient(gateway.url, KEY, "t", clock=lambda: time.time() - 600)
    with pytest.raises(RequestRefused) as old:
        await stale.check("s", LIVING.name, LIVING.id_number)
    assert old.value.reason == "stale_timestamp"


def test_a_replayed_request_and_a_body_without_a_field_are_refused(
    gateway: IdentityGateway,
) -> None:
    body = b'{"session_id":"s","name":"x"}'
    signed = signing.sign(KEY, "t", "POST", "/v1/verify", int(time.time()), "n1", "s", body)
    first = httpx.post(gateway.url + "/v1/verify", content=body, headers=signed.headers())
    assert first.status_code == 400 and "id_number" in first.json()["detail"]
    again = httpx.post(gateway.url + "/v1/verify", content=body, headers=signed.headers())
    assert (again.status_code, again.json()["error"]) == (401, "replayed_nonce")


async def test_an_answer_for_another_session_is_rejected(gateway: IdentityGateway) -> None:
    """A gateway answer replayed into another session fails the client's binding check."""
    real = httpx.AsyncHTTPTransport()

    class SwapSession(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            body = request.content.replace(b'"sess-mine"', b'"sess-else"')
            signed = signing.sign(
                KEY, "t", "POST", "/v1/verify", int(time.time()), "swap-nonce", "sess-else", body
            )
            forged = httpx.Request("POST", request.url, content=body, headers=signed.headers())
            response = await real.handle_async_request(forged)
            await response.aread()
            return response

    swapped = IdentityClient(gateway.url, KEY, "t", transport=SwapSession())
    with pytest.raises(AnswerInvalid, match="sess-else"):
        await swapped.check("sess-mine", LIVING.name, LIVING.id_number)


@pytest.mark.parametrize("mode", ["down", "hang"])
async def test_a_down_service_raises_within_the_bound(gateway: IdentityGateway, mode: str) -> None:
    gateway.set_mode(mode)
    try:
        bounded = client(gateway, try_timeout_s=0.5, total_timeout_s=2.0, backoff_base_s=0.05)
        start = time.monotonic()
        with pytest.raises(IdentityServiceDown, match="HTTP 503" if mode == "down" else "Timeout"):
            await bounded.check("s", LIVING.name, LIVING.id_number)
        # the bound is 2 s; the slack is for a loaded 2-core machine, not a tight target
        assert time.monotonic() - start < 6.0
    finally:
        gateway.set_mode("up")


async def test_an_unreachable_service_is_down_not_a_crash(tmp_path: Path) -> None:
    nobody = IdentityClient(
        f"http://127.0.0.1:{procs.free_port()}",
        KEY,
        "t",
        total_timeout_s=2.0,
        backoff_base_s=0.05,
    )
    with pytest.raises(IdentityServiceDown, match="ConnectError"):
        await nobody.check("s", LIVING.name, LIVING.id_number)
