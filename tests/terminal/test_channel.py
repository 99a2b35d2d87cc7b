"""Data-channel framing, the terminal's answers, and what the screen says: pure."""

from __future__ import annotations

import base64
import random
from datetime import UTC, datetime, timedelta

import pytest

from common.wire import datachannel as channel
from edge.teller import view
from edge.teller.call import Call, Phase
from edge.teller.customer import SimulatedCustomer, auto_answer, synthetic_strokes
from edge.teller.paperwork import Paperwork

FORM = {
    "type": "form",
    "form_id": "f1",
    "title": "确认",
    "fields": [
        {"name": "ok", "label": "本人办理", "kind": "confirm"},
        {"name": "to", "label": "到账", "kind": "choice", "options": ["活期", "定期"]},
        {"name": "note", "label": "备注", "kind": "text"},
    ],
}


def test_large_messages_travel_in_chunks_and_come_back_whole() -> None:
    doc = channel.document("id_card", random.Random(1).randbytes(40_000))
    parts = channel.encode(doc)
    assert len(parts) > 1 and all(len(p.encode()) <= channel.MAX_TEXT for p in parts)
    r = channel.Reassembler()
    out = [r.feed(p) for p in reversed(parts)]  # any order
    assert out[:-1] == [None] * (len(parts) - 1)
    assert channel.parse(out[-1], channel.TERMINAL_TYPES) == doc  # type: ignore[arg-type]
    assert r.parts == {}
    small = channel.encode(channel.answer("f1", {"ok": True}))
    assert len(small) == 1 and r.feed(small[0]) == small[0]


def test_unfinished_messages_cannot_pile_up() -> None:
    r = channel.Reassembler()
    for i in range(channel.MAX_PENDING + 5):
        part = channel.encode(channel.document("v", bytes(30_000 + i)))[0]
        assert r.feed(part.replace('"id":"', f'"id":"{i}-')) is None
    assert len(r.parts) == channel.MAX_PENDING


@pytest.mark.parametrize(
    "text",
    [
        "nope",
        '{"type":"chunk","id":"x","index":3,"count":2,"data":""}',
        '{"type":"form","form_id":"f","fields":[{"name":"a","kind":"slider"}]}',
        '{"type":"form","form_id":"f","fields":[{"name":"a","kind":"choice"}]}',
        '{"type":"answer","form_id":"f","values":{}}',  # terminal's type, not the teller's
    ],
)
def test_garbage_on_the_channel_is_refused(text: str) -> None:
    with pytest.raises(channel.BadChannelMessage):
        whole = channel.Reassembler().feed(text)
        channel.parse(whole or "", channel.TELLER_TYPES)


def test_simulated_answers_follow_the_contract() -> None:
    assert auto_answer(FORM) == {"ok": True, "to": "活期", "note": "模拟"}
    strokes = synthetic_strokes(random.Random(3))
    assert len(strokes) == 3 and all(len(p) == 3 for s in strokes for p in s)
    times = [p[2] for s in strokes for p in s]
    assert times == sorted(times)
    c = SimulatedCustomer(seed=7, every_s=60)
    gaps = [c.next_visit_in() for _ in range(2000)]
    assert 50 < sum(gaps) / len(gaps) < 70
    assert c.business() in {code for code, _ in view.MENU}


async def test_paperwork_for_a_real_customer_waits_for_the_screen() -> None:
    out: list[str] = []

    async def capture(kind: str) -> bytes:
        return b"\xff\xd8jpeg"

    pw = Paperwork(lambda t: out.append(t) is None, capture)
    pw.on_text(channel.encode({"type": "screen", "title": "请核对", "text": "金额 100 元"})[0])
    pw.on_text(channel.encode(FORM)[0])
    pw.on_text("garbage")
    assert pw.screen == {"title": "请核对", "text": "金额 100 元"} and pw.form == FORM
    assert out == [] and pw.refused == 1
    with pytest.raises(ValueError):
        pw.answer("other", {})
    assert pw.answer("f1", {"ok": False})
    pw.on_text(channel.encode({"type": "sign", "form_id": "f1"})[0])
    assert pw.sign == {"form_id": "f1"}
    assert pw.signature("f1", 600, 200, [[[1, 2, 0], [3, 4, 16]]])
    pw.on_text(channel.encode({"type": "capture", "kind": "voucher"})[0])
    for task in list(pw._tasks):
        await task
    got = [channel.parse(t, channel.TERMINAL_TYPES) for t in out]
    assert [m["type"] for m in got] == ["answer", "signature", "document"]
    assert base64.b64decode(got[2]["data_b64"]) == b"\xff\xd8jpeg"
    assert pw.form is None and pw.sign is None


def test_the_screen_speaks_plain_chinese() -> None:
    t0 = datetime(2026, 5, 1, 9, tzinfo=UTC)
    waiting = Call(Phase.WAITING, "r", "pension", "s", 3, 170.0, since=t0)
    assert view.message(waiting) == "前面还有 2 位,预计等待 3 分钟"
    assert view.wait_text(1, 20.0) == "马上就轮到您了,请稍候"
    assert view.wait_text(4, None) == "前面还有 3 位,柜员都在忙,请稍候"
    assert view.wait_text(None, None) == "正在为您排队,请稍候"
    lost = Call(Phase.RECONNECTING, notice="link_lost")
    assert view.message(lost) == "网络不稳定,正在重新连接"
    for notice, text in view.NOTICES.items():
        assert view.message(Call(notice=notice)) == text
    shown = view.view(waiting, Paperwork(lambda t: True, None), t0 + timedelta(seconds=42))  # type: ignore[arg-type]
    assert shown["seconds"] == 42 and shown["phase"] == "waiting" and len(shown["menu"]) <= 6


async def test_a_simulated_terminal_answers_and_signs_by_itself() -> None:
    out: list[str] = []

    async def capture(kind: str) -> bytes:
        from edge.teller import jpeg

        return jpeg.synthetic_document(kind)

    pw = Paperwork(lambda t: out.append(t) is None, capture, simulate=True)
    for msg in (FORM, {"type": "sign", "form_id": "f1"}, {"type": "capture", "kind": "id_card"}):
        pw.on_text(channel.encode(msg)[0])
    for task in list(pw._tasks):
        await task
    r = channel.Reassembler()
    got = [channel.parse(w, channel.TERMINAL_TYPES) for w in map(r.feed, out) if w]
    assert got[0] == channel.answer("f1", {"ok": True, "to": "活期", "note": "模拟"})
    assert got[1]["type"] == "signature" and len(got[1]["strokes"]) == 3
    assert got[2]["kind"] == "id_card" and base64.b64decode(got[2]["data_b64"])[:2] == b"\xff\xd8"
    assert len(out) > 3  # the document came in chunks
    assert pw.form is None and pw.sign is None
