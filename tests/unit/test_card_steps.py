"""The pure parts of the card and PIN steps: the nonce as the card's unpredictable number,
found again by the cloud in the CDOL1 data the card's own DOL describes; the card's answer
as a step result; the cloud's words reaching the customer screen; the catalogue's PIN mode."""

from __future__ import annotations

import datetime as dt

import pytest

from cloud.catalogue import DEFAULT_PATH, CatalogueError, load_catalogue
from cloud.workflow.cardcheck import carried_un, proof_of
from common.wire import call as wire
from edge.steps.card import proof_result, transaction
from edge.teller import call
from edge.teller.call import Call, Phase
from firmware_adapters.iccard import emv
from firmware_adapters.iccard.card import CDOL1

NOW = dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.UTC)
GRANT = wire.Grant("s1", "customer", "http://j/janus", "t", "s1", "customer", "teller-7")


def test_the_desks_nonce_is_the_unpredictable_number_the_cloud_finds_again() -> None:
    request = wire.StepRequest("s1", "card_read", "0a1b2c3d" + "e" * 24, {"amount_fen": 500})
    tx = transaction(request, NOW)
    assert tx.unpredictable == bytes.fromhex("0a1b2c3d") and tx.amount_fen == 500
    data = emv.cdol_data(emv.parse_dol(CDOL1), tx)  # what the terminal sends the card
    assert carried_un(CDOL1, data) == wire.unpredictable_number(request.nonce)
    assert carried_un(bytes.fromhex("9F0206"), bytes(6)) is None  # a CDOL without 9F37
    with pytest.raises(wire.CallError, match="'nonce'"):
        wire.unpredictable_number("not hex")
    with pytest.raises(ValueError, match="amount_fen"):
        transaction(wire.StepRequest("s1", "card_read", "ab" * 16, {"amount_fen": "5"}), NOW)


def _proof(cid: int = 0x80) -> emv.CardProof:
    return emv.CardProof(
        "6217002870012345672", 1, bytes.fromhex("7C00"), 0x2A, cid,
        bytes.fromhex("0011223344556677"), bytes.fromhex("07010103A00000"), CDOL1,
        bytes(29),
    )  # fmt: skip


def test_a_card_answer_becomes_a_result_whose_full_data_the_cloud_reads_back() -> None:
    done = proof_result(_proof())
    assert done.outcome == "passed" and done.send_full
    assert done.masked == {"card_masked": "6217***********5672", "pan_sequence": 1, "atc": 42}
    assert "6217002870012345672" not in str(done.masked)
    proof, cdol1 = proof_of(done.full)
    assert (proof.pan, proof.atc, proof.cryptogram, cdol1) == (
        "6217002870012345672", 42, bytes.fromhex("0011223344556677"), CDOL1,
    )  # fmt: skip
    declined = proof_result(_proof(cid=0x00))  # an AAC: the card declined
    assert declined.outcome == "failed" and not declined.full and not declined.send_full
    with pytest.raises(ValueError, match="'arqc'"):
        proof_of({k: v for k, v in done.full.items() if k != "arqc"})


def test_the_clouds_words_about_a_step_reach_the_customer_screen_in_the_call() -> None:
    words = wire.StepOutcome("s1", "pin_entry", False, "密码错误,请重新输入。还可尝试2次")
    assert wire.parse_desk(words.to_bytes()) == words
    in_call = Call(Phase.IN_CALL, session="s1", grant=GRANT, since=NOW)
    out = call.step(in_call, call.DeskSays(words), NOW)
    assert out.actions == (call.Notify(words.text),) and out.call == in_call
    other = wire.StepOutcome("s2", "pin_entry", False, "x")
    assert call.step(in_call, call.DeskSays(other), NOW).ignored is not None
    assert call.step(Call(), call.DeskSays(words), NOW).ignored is not None
    with pytest.raises(wire.CallError, match="'passed'"):
        wire.parse_desk(b'{"type":"step_outcome","session":"s1","step":"pin_entry","passed":1}')


def test_the_catalogue_says_which_business_takes_a_new_pin(tmp_path) -> None:  # type: ignore[no-untyped-def]
    catalogue = load_catalogue()
    assert catalogue.get("password_reset").pin_entry == "new"
    assert catalogue.get("loan_repayment").pin_entry == "verify"
    assert catalogue.get("password_change").pin_entry == "change"
    bad = tmp_path / "bank.toml"
    text = DEFAULT_PATH.read_text()
    bad.write_text(text.replace('pin_entry = "new"', 'pin_entry = "twice"'))
    refused = "'pin_entry' must be one of verify, new, change, not 'twice'"
    with pytest.raises(CatalogueError, match=refused):
        load_catalogue(bad)
