"""The shipped catalogue loads, and malformed catalogues fail naming the entry and field."""

from __future__ import annotations

import copy
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from cloud.catalogue import (
    DEFAULT_PATH,
    CatalogueError,
    PostingSpec,
    Risk,
    load_catalogue,
    parse_catalogue,
)


def _doc() -> dict[str, Any]:
    return tomllib.loads(DEFAULT_PATH.read_text())


def test_shipped_catalogue_has_twenty_businesses_with_rules() -> None:
    cat = load_catalogue()
    assert len(cat.businesses) >= 20
    for code in ("password_reset", "card_loss", "card_loss_release", "account_opening_intent",
                 "social_security_activation", "personal_info_change", "temporary_limit_raise",
                 "large_transfer", "pension_account_opening"):  # fmt: skip
        assert code in cat.businesses
    for b in cat.businesses.values():
        if b.risk is Risk.HIGH:
            assert "supervisor_authorisation" in b.steps and "dual_recording" in b.steps
    assert cat.get("password_reset").qa_sample_rate == 0.2
    assert cat.get("cash_deposit").qa_sample_rate == 0.05  # from [defaults]
    assert cat.liveness_threshold == 80 and cat.manual_review_below == 70
    # What posts to the core is data: card_loss records against the account the teller
    # names (no card is present), a deposit credits an amount, an inquiry posts no money.
    assert cat.get("card_loss").posting == PostingSpec("record", ("account",))
    assert cat.get("cash_deposit").posting == PostingSpec("credit", ("amount_fen",))
    assert cat.get("password_reset").posting == PostingSpec("record", ())
    assert cat.get("account_opening_intent").posting is None


def test_json_catalogue_is_accepted(tmp_path: Path) -> None:
    doc = _doc()
    for row in doc["business"]:
        row.pop("launched_on", None)
    doc["defaults"]["launched_on"] = "2024-01-01"
    path = tmp_path / "cat.json"
    path.write_text(json.dumps(doc))
    assert load_catalogue(path).businesses.keys() == load_catalogue().businesses.keys()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["business"][0]["steps"].append("fingerprint"), "unknown step 'fingerprint'"),
        (lambda d: d["business"][0]["steps"].remove("supervisor_authorisation"),
         "'password_reset': high-risk business must include ['supervisor_authorisation']"),
        (lambda d: d["business"][1].update(risk="severe"), "'password_change': 'risk' must be"),
        (lambda d: d["business"][1].update(qa_sample_rate=1.5), "'qa_sample_rate' must be"),
        (lambda d: d["business"].append(dict(d["business"][0])), "duplicate code"),
        (lambda d: d["business"][2].update(colour="red"), "business[2] 'card_loss': unknown field"),
        (lambda d: d["defaults"].pop("retention_days"), "'retention_days' is required"),
        (lambda d: d["business"][3]["steps"].append("pin_entry"), "listed twice"),
        (lambda d: d["business"][2]["posting"].update(kind="transfer"),
         "business[2] 'card_loss' posting: 'kind' must be one of"),
        (lambda d: d["business"][2]["posting"].update(fields=["account", "iban"]),
         "business[2] 'card_loss' posting: unknown field 'iban'"),
        (lambda d: d["business"][2].update(posting={"kind": "debit"}),
         "'card_loss' posting: a debit needs the field 'amount_fen'"),
        (lambda d: d["business"][2].update(posting="record"),
         "'card_loss' posting: must be a table"),
        (lambda d: d["business"][2]["posting"].update(ledger="x"),
         "'card_loss' posting: unknown key(s) ['ledger']"),
    ],
)  # fmt: skip
def test_bad_catalogue_names_entry_and_field(mutate: Any, message: str) -> None:
    doc = copy.deepcopy(_doc())
    mutate(doc)
    with pytest.raises(CatalogueError) as err:
        parse_catalogue(doc, "bank.toml")
    assert message in str(err.value)
    assert str(err.value).startswith("bank.toml")


def test_unreadable_or_invalid_file(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match="cannot read"):
        load_catalogue(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[business]\ncode = ")
    with pytest.raises(CatalogueError, match="not valid toml"):
        load_catalogue(bad)
