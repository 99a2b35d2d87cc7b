"""The cloud's words about a step reach the terminal over the real broker: the desk link
sends a ``step_outcome`` with the customer screen's text after it has decided a signed
result (here an expired ID card's refusal; a wrong PIN's tries left and a locked card take
the same path, see tests/transactions/test_card_pin_steps.py for the words themselves)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import httpx

from common.wire import call as wire
from firmware_adapters.idcard.simulator import sample_card
from tests.helpers import eventually
from tests.steps_rig import id_reader
from tests.teller.test_teller_app import TELLER, Desked, desked, login  # noqa: F401 - fixture


async def test_the_terminal_hears_the_customer_screens_words_for_a_refused_step(
    desked: Desked,  # noqa: F811
    tmp_path: Path,
) -> None:
    async with httpx.AsyncClient(base_url=desked.url) as teller:
        await login(teller, TELLER)
        r = await teller.post("/api/v1/teller/me/state", json={"state": "available"})
        assert r.status_code == 204, r.text
        sid = await desked.request("7" * 32, "card_loss")
        await eventually(lambda: _offered(desked, sid))
        r = await teller.post(f"/api/v1/teller/sessions/{sid}/accept")
        assert r.status_code == 200, r.text
        await desked.next("connect")
        url = f"/api/v1/workflow/{sid}"
        r = await teller.post(f"{url}/start", json={"business": "card_loss"})
        assert r.status_code == 201, r.text
        r = await teller.post(f"{url}/steps", json={"step": "dual_recording"})
        assert r.status_code == 200, r.text
        r = await teller.post(f"{url}/steps/id_card_read/ask")
        assert r.status_code == 200, r.text
    card = sample_card(0)
    expired = dataclasses.replace(
        card,
        text=dataclasses.replace(
            card.text,
            valid_from=card.text.valid_from.replace(year=2006),
            valid_until=card.text.valid_from.replace(year=2016),
        ),
    )
    async with id_reader(tmp_path, expired) as handler:
        asked = wire.desk_from_dict(await desked.next("step", step="id_card_read"))
        assert isinstance(asked, wire.StepRequest)
        done = await handler(asked)
    await desked.say(desked.device.sign(asked, done, datetime.now(UTC)).to_dict())
    outcome = wire.desk_from_dict(await desked.next("step_outcome", step="id_card_read"))
    assert outcome == wire.StepOutcome(sid, "id_card_read", False, "身份证已过期，请使用有效证件")


async def _offered(rig: Desked, sid: str) -> bool:
    return rig.desk.teller_view(TELLER)["offer"] == sid
