"""What a completed business posts to the bank's core: pure rules, no I/O.

The catalogue says which businesses post and what (``cloud.catalogue.PostingSpec``); the
session says who and with which proofs (its recorded step results); the teller's confirm
supplies the fields the catalogue asks for. ``build_posting`` turns the three into one
``corebank.Posting``, whose idempotency key comes from the session and the business.

``Proofs`` is read from the workflow's step records. The keys it reads are the contract
with the device-step plumbing (signed card_read / pin_entry results verified through the
HSM): a passed ``card_read`` record's detail may carry ``account`` (the core's account
reference), ``card_masked``, ``arqc_verified``, ``atc`` and ``amount_fen`` (the amount the
verified cryptogram covers: the confirm may post only that amount); a passed ``pin_entry`` record's
``pin_verified`` and, for a new PIN, ``pvv``. Whatever the session recorded goes with the
posting; nothing is made up when a key is absent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cloud.catalogue import PostingSpec
from cloud.workflow.engine import StepRecord, Workflow
from cloud.workflow.errors import WorkflowError
from corebank import Posting

#: How a card number is shown when no card step read one (a business without a card).
NO_CARD = "******"


class PostingInputError(WorkflowError, ValueError):
    """The confirm lacks (or wrongly supplies) a field the catalogue's posting needs."""


@dataclass(frozen=True, slots=True)
class Proofs:
    """What the call proved about the card and the PIN, as its steps recorded it."""

    account: str | None = None
    card_masked: str | None = None
    arqc_verified: bool | None = None
    atc: int | None = None
    pin_verified: bool | None = None
    pvv: str | None = None
    #: The amount the card's verified cryptogram covers (the teller entered it before the
    #: card was read); None when the card step was asked without one.
    amount_fen: int | None = None

    @classmethod
    def from_records(cls, records: Iterable[StepRecord]) -> Proofs:
        card: Mapping[str, Any] = {}
        pin: Mapping[str, Any] = {}
        for r in records:
            if r.passed and r.step == "card_read":
                card = r.detail
            elif r.passed and r.step == "pin_entry":
                pin = r.detail
        return cls(
            account=_str(card.get("account")),
            card_masked=_str(card.get("card_masked")),
            arqc_verified=_bool(card.get("arqc_verified")),
            atc=card.get("atc") if isinstance(card.get("atc"), int) else None,
            pin_verified=_bool(pin.get("pin_verified")),
            pvv=_str(pin.get("pvv")),
            amount_fen=_int(card.get("amount_fen")),
        )

    def for_core(self) -> dict[str, Any]:
        """The proofs the core keeps with the posting (never the account or card number)."""
        out = {
            "arqc_verified": self.arqc_verified,
            "atc": self.atc,
            "pin_verified": self.pin_verified,
            "new_pvv": self.pvv,
            "arqc_amount_fen": self.amount_fen,
        }
        return {k: v for k, v in out.items() if v is not None}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def build_posting(
    wf: Workflow, spec: PostingSpec, fields: Mapping[str, Any], proofs: Proofs
) -> Posting:
    """The posting for ``wf``'s business; PostingInputError names what is missing or wrong."""
    extra = sorted(set(fields) - set(spec.fields))
    if extra:
        raise PostingInputError(
            f"{wf.business.code} posts {list(spec.fields) or 'no fields'}; not {extra}"
        )
    account = proofs.account
    given = fields.get("account")
    if "account" in spec.fields:
        if not isinstance(given, str) or not given:
            if account is None:
                raise PostingInputError(f"{wf.business.code} needs the field 'account'")
        elif account is not None and given != account:
            raise PostingInputError("'account' differs from the account the card step read")
        else:
            account = given
    if account is None:
        raise PostingInputError(
            f"{wf.business.code}: no account reference (the card_read step recorded none)"
        )
    amount = 0
    if "amount_fen" in spec.fields:
        amount = fields.get("amount_fen", proofs.amount_fen)
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise PostingInputError(
                f"{wf.business.code} needs 'amount_fen', a positive whole number of fen"
            )
        if proofs.amount_fen is not None and amount != proofs.amount_fen:
            raise PostingInputError(
                f"'amount_fen' {amount} differs from the {proofs.amount_fen} fen the card's "
                "cryptogram covers"
            )
    return Posting(
        session_id=wf.session_id,
        business=wf.business.code,
        kind=spec.kind,
        account=account,
        card_masked=proofs.card_masked or NO_CARD,
        amount_fen=amount,
        proofs=proofs.for_core(),
    )
