"""Golden files for the data channel between teller and terminal (STYLE.md 3 and 13).

The terminal's codec (``common.wire.datachannel``, Python) and the teller page's
(``cloud/sessions/static/teller-data.js``, JavaScript, run here in node) must turn the same
message into the same texts and read each other's texts back into the same object. Stored
under ``tests/fixtures/datachannel/``: one ``<case>.jsonl`` per message (each line one text
as sent), and ``voucher.jpg``, the photo the document case carries.

Each message is built by its producer: the terminal's (answer, signature, document) by
``channel``'s builders, the form by teller-data.js's ``formMessage``, as the desk does.
Chunk ids are passed in so the texts are the same on every run. Numbers are whole: Python
writes ``1.0`` where JavaScript writes ``1``; both ends read either.

After a deliberate change of the wire format: ``CUNTONG_REGEN_GOLDEN=1 pytest`` this file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from common.wire import datachannel as channel

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures" / "datachannel"
TELLER_DATA = HERE.parent / "cloud" / "sessions" / "static" / "teller-data.js"
HARNESS = HERE / "datachannel_harness.mjs"
NODE = shutil.which("node")
REGEN = os.environ.get("CUNTONG_REGEN_GOLDEN") == "1"
FORM = ("risk", 7)  # formMessage("risk", 7): the risk notice with both kinds of field


def strokes() -> list[list[list[int]]]:
    """A long signature (three strokes, 2,400 points): too big for one text, so it chunks."""
    return [
        [[40 + i // 2 + 90 * s, 100 + (i * 7 + s * 13) % 60 - 30, 8 * i] for i in range(800)]
        for s in range(3)
    ]


def terminal_cases() -> dict[str, tuple[dict[str, Any], str | None]]:
    """name -> (message, chunk id) for what the terminal sends."""
    return {
        "answer": (channel.answer("risk-7", {"understood": True, "tolerance": "稳健型"}), None),
        "signature": (channel.signature("sign-8", 600, 200, strokes()), "golden-signature"),
        "document": (
            channel.document("voucher", (FIXTURES / "voucher.jpg").read_bytes()),
            "golden-document",
        ),
    }


def golden(name: str) -> list[str]:
    return (FIXTURES / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()


def write_golden(name: str, texts: list[str]) -> None:
    (FIXTURES / f"{name}.jsonl").write_text("\n".join(texts) + "\n", encoding="utf-8")


def run_js(cases: list[dict[str, Any]]) -> dict[str, Any]:
    assert NODE is not None
    done = subprocess.run(
        [NODE, str(HARNESS)],
        input=json.dumps({"module": str(TELLER_DATA), "cases": cases}),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def whole(texts: list[str], known: frozenset[str]) -> dict[str, Any]:
    """The terminal's reading of some texts: reassembled, then parsed."""
    reassembler = channel.Reassembler()
    fed = [reassembler.feed(t) for t in texts]
    assert fed[:-1] == [None] * (len(texts) - 1) and fed[-1] is not None
    return channel.parse(fed[-1], known)


@pytest.fixture(scope="module")
def regenerated() -> None:
    """With CUNTONG_REGEN_GOLDEN=1: write the golden files from the producers first."""
    if not REGEN:
        return
    for name, (msg, cid) in terminal_cases().items():
        write_golden(name, channel.encode(msg, cid))
    if NODE is None:
        pytest.fail("node is needed to regenerate the form (teller-data.js builds it)")
    form = run_js([{"name": "form", "form": FORM, "chunk_id": None, "golden": []}])["form"]
    write_golden("form", form["encoded"])


def test_python_codec_matches_the_golden_texts(regenerated: None) -> None:
    for name, (msg, cid) in terminal_cases().items():
        texts = golden(name)
        assert channel.encode(msg, cid) == texts, name
        assert all(len(t.encode()) <= channel.MAX_TEXT for t in texts)
        assert whole(texts, channel.TERMINAL_TYPES) == msg, name
    # Large messages really are chunked, small ones are not.
    assert [len(golden(n)) > 1 for n in ("answer", "signature", "document", "form")] == [
        False,
        True,
        True,
        False,
    ]
    # The form the teller's page sends: the terminal reads it and writes it back unchanged.
    form = whole(golden("form"), channel.TELLER_TYPES)
    assert channel.encode(form) == golden("form")


@pytest.mark.skipif(NODE is None, reason="node missing")
def test_javascript_codec_matches_the_golden_texts(regenerated: None) -> None:
    cases = [
        {"name": name, "message": msg, "chunk_id": cid, "golden": golden(name)}
        for name, (msg, cid) in terminal_cases().items()
    ]
    cases.append({"name": "form", "form": FORM, "chunk_id": None, "golden": golden("form")})
    js = run_js(cases)
    for name, (msg, _) in terminal_cases().items():
        assert js[name]["encoded"] == golden(name), name
        assert js[name]["parsed"] == msg, name
        assert js[name]["inbound"] is True, name  # the teller's page accepts what we send
    form = whole(golden("form"), channel.TELLER_TYPES)
    assert js["form"]["message"] == form  # formMessage still builds the golden form
    assert js["form"]["encoded"] == golden("form")
    assert js["form"]["parsed"] == form
