"""The business catalogue: which businesses a remote counter runs and what each requires.

Data, not code: ``businesses.toml`` (next to this module, or any file a bank supplies) lists
each business with its risk level, the ordered steps the teller must walk through, how long
its evidence is kept, the quality-inspection sampling rate and what it posts to the bank's core
(``posting``: the kind, and the fields the teller's confirm supplies). ``load_catalogue`` validates
everything once at start-up and raises ``CatalogueError`` naming the file, the entry and the
field, so a typo stops the cloud instead of silently dropping a step.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from common.errors import ConfigError

DEFAULT_PATH = Path(__file__).with_name("businesses.toml")


class CatalogueError(ConfigError, ValueError):
    """The business catalogue file is malformed; the message names the file, entry and field."""


class Risk(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


#: What a ``pin_entry`` step may do (``Business.pin_entry``).
PIN_ENTRY_MODES = ("verify", "new", "change")


@dataclass(frozen=True, slots=True)
class StepKind:
    label: str
    #: Must be performed by someone other than the serving teller (a supervisor).
    second_person: bool = False


#: Every step a business may require. Order within a business comes from the catalogue.
STEPS: Mapping[str, StepKind] = {
    "dual_recording": StepKind("双录开始并告知客户 / start dual recording, inform customer"),
    "id_card_read": StepKind("读取二代身份证 / read ID card"),
    "id_online_check": StepKind("公民身份联网核查 / online identity check"),
    "face_match": StepKind("人证比对 / live face against the ID photo"),
    "liveness": StepKind("静默活体 ≥ 阈值，否则人工复核 / passive liveness or manual review"),
    "active_liveness": StepKind("动作活体 / active liveness (blink, turn)"),
    "card_read": StepKind("读取银行卡 / read bank card"),
    "pin_entry": StepKind("客户输入密码 / customer PIN entry"),
    "voucher_capture": StepKind("凭证拍照 / capture voucher image"),
    "e_signature": StepKind("客户电子签名 / customer e-signature"),
    "supervisor_authorisation": StepKind("主管授权 / supervisor authorisation", second_person=True),
}

#: Steps every high-risk business must contain (checked at load).
HIGH_RISK_REQUIRES = ("supervisor_authorisation", "dual_recording")

#: Posting kinds the core knows (``corebank.adapter.KINDS``) and the fields a posting may
#: take from the teller's confirm: ``account`` (the core's account reference, when no card
#: step read it) and ``amount_fen`` (required for a debit or credit).
POSTING_KINDS = ("debit", "credit", "inquiry", "record")
POSTING_FIELDS = ("account", "amount_fen")


@dataclass(frozen=True, slots=True)
class PostingSpec:
    """What a business posts to the core when the teller confirms it."""

    kind: str
    fields: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Business:
    code: str
    name: str
    risk: Risk
    steps: tuple[str, ...]
    retention_days: int
    #: Share of ordinary sessions sampled for quality inspection (0.0–1.0).
    qa_sample_rate: float
    launched_on: dt.date
    #: Teller-desk skill group (routing widens to "anyone in the group" after a while).
    group: str = ""
    #: What the business posts to the core on completion; None: nothing (it completes at
    #: the teller's confirm without the core).
    posting: PostingSpec | None = None
    #: Face-match similarity (0-100) at or above which the live face matches the ID photo:
    #: 100 × (1 − distance / 1.2) of the embeddings, 50 being dlib's own 0.6 distance.
    face_match_threshold: float = 50.0
    #: What the ``pin_entry`` step does: ``verify`` the customer's PIN against the card's
    #: (the HSM, the core counting wrong ones), take a ``new`` PIN twice (password reset), or
    #: ``change`` it: verify the current PIN, then take the new one twice (PIN change).
    pin_entry: str = "verify"

    @property
    def name_zh(self) -> str:
        return self.name.partition(" / ")[0]

    @property
    def name_en(self) -> str:
        zh, sep, en = self.name.partition(" / ")
        return en if sep else zh


@dataclass(frozen=True, slots=True)
class Catalogue:
    businesses: Mapping[str, Business]
    #: Passive-liveness score (0–100) at or above which the liveness step passes by itself.
    liveness_threshold: float
    #: Sessions whose liveness score is below this go to full manual quality review.
    manual_review_below: float
    #: A business launched fewer than this many days ago is sampled at 100%.
    new_business_days: int

    def get(self, code: str) -> Business:
        try:
            return self.businesses[code]
        except KeyError:
            raise CatalogueError(f"unknown business type {code!r}") from None


def load_catalogue(path: Path = DEFAULT_PATH) -> Catalogue:
    """Read and validate a TOML (``.toml``) or JSON (``.json``) catalogue file."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise CatalogueError(f"{path}: cannot read ({err.strerror})") from err
    try:
        if path.suffix == ".json":
            import json

            data = json.loads(raw)
        else:
            data = tomllib.loads(raw.decode())
    except (ValueError, UnicodeDecodeError) as err:
        raise CatalogueError(
            f"{path}: not valid {path.suffix.lstrip('.') or 'toml'}: {err}"
        ) from err
    return parse_catalogue(data, str(path))


def parse_catalogue(data: Any, source: str = "<catalogue>") -> Catalogue:
    """Validate an already-decoded catalogue document."""
    if not isinstance(data, dict):
        raise CatalogueError(f"{source}: top level must be a table")
    unknown = set(data) - {"defaults", "business"}
    if unknown:
        raise CatalogueError(f"{source}: unknown top-level key(s) {sorted(unknown)}")
    defaults = data.get("defaults", {})
    where = f"{source} [defaults]"
    if not isinstance(defaults, dict):
        raise CatalogueError(f"{where}: must be a table")
    unknown = set(defaults) - _DEFAULT_FIELDS
    if unknown:
        raise CatalogueError(f"{where}: unknown key(s) {sorted(unknown)}")
    threshold = _number(defaults, "liveness_threshold", where, 0, 100, 80.0)
    manual = _number(defaults, "manual_review_below", where, 0, 100, 70.0)
    new_days = int(_number(defaults, "new_business_days", where, 0, 3650, 90))
    rows = data.get("business")
    if not isinstance(rows, list) or not rows:
        raise CatalogueError(f"{source}: needs at least one [[business]] entry")
    businesses: dict[str, Business] = {}
    for index, row in enumerate(rows):
        business = _business(row, f"{source} business[{index}]", defaults)
        if business.code in businesses:
            raise CatalogueError(f"{source} business[{index}]: duplicate code {business.code!r}")
        businesses[business.code] = business
    return Catalogue(businesses, threshold, manual, new_days)


_DEFAULT_FIELDS = {
    "liveness_threshold",
    "manual_review_below",
    "new_business_days",
    "retention_days",
    "qa_sample_rate",
    "launched_on",
    "face_match_threshold",
}
_FIELDS = {
    "face_match_threshold",
    "code",
    "name",
    "group",
    "risk",
    "steps",
    "retention_days",
    "qa_sample_rate",
    "launched_on",
    "posting",
    "pin_entry",
}


def _business(row: Any, where: str, defaults: Mapping[str, Any]) -> Business:
    if not isinstance(row, dict):
        raise CatalogueError(f"{where}: must be a table")
    code = row.get("code")
    if not isinstance(code, str) or not code.isidentifier():
        raise CatalogueError(f"{where}: 'code' must be an identifier like 'password_reset'")
    where = f"{where} {code!r}"
    unknown = set(row) - _FIELDS
    if unknown:
        raise CatalogueError(f"{where}: unknown field(s) {sorted(unknown)}")
    name = row.get("name")
    if not isinstance(name, str) or not name:
        raise CatalogueError(f"{where}: 'name' must be a non-empty string")
    group = row.get("group")
    if not isinstance(group, str) or not group.isidentifier():
        raise CatalogueError(f"{where}: 'group' must be an identifier like 'cards'")
    try:
        risk = Risk(str(row.get("risk")))
    except ValueError:
        raise CatalogueError(f"{where}: 'risk' must be one of {[r.value for r in Risk]}") from None
    steps = row.get("steps")
    if not isinstance(steps, list) or not steps or not all(isinstance(s, str) for s in steps):
        raise CatalogueError(f"{where}: 'steps' must be a non-empty list of step names")
    for step in steps:
        if step not in STEPS:
            raise CatalogueError(f"{where}: unknown step {step!r} (known: {sorted(STEPS)})")
    if len(set(steps)) != len(steps):
        raise CatalogueError(f"{where}: a step is listed twice")
    if risk is Risk.HIGH:
        missing = [s for s in HIGH_RISK_REQUIRES if s not in steps]
        if missing:
            raise CatalogueError(f"{where}: high-risk business must include {missing}")
    merged = {**defaults, **row}
    retention = int(_number(merged, "retention_days", where, 1, 36500, None))
    rate = _number(merged, "qa_sample_rate", where, 0, 1, None)
    launched = merged.get("launched_on")
    if isinstance(launched, str):
        try:
            launched = dt.date.fromisoformat(launched)
        except ValueError:
            launched = None
    if not isinstance(launched, dt.date) or isinstance(launched, dt.datetime):
        raise CatalogueError(f"{where}: 'launched_on' must be a date (YYYY-MM-DD)")
    face = _number(merged, "face_match_threshold", where, 1, 99, 50.0)
    if "face_match" in steps and "id_card_read" not in steps[: steps.index("face_match")]:
        raise CatalogueError(f"{where}: face_match needs id_card_read before it (the ID photo)")
    posting = _posting(row.get("posting"), where)
    pin = row.get("pin_entry", "verify")
    if pin not in PIN_ENTRY_MODES:
        raise CatalogueError(
            f"{where}: 'pin_entry' must be one of {', '.join(PIN_ENTRY_MODES)}, not {pin!r}"
        )
    return Business(
        code, name, risk, tuple(steps), retention, rate, launched, group, posting, face, pin
    )


def _posting(raw: Any, where: str) -> PostingSpec | None:
    if raw is None:
        return None
    where = f"{where} posting"
    if not isinstance(raw, dict):
        raise CatalogueError(f'{where}: must be a table like {{ kind = "record" }}')
    unknown = set(raw) - {"kind", "fields"}
    if unknown:
        raise CatalogueError(f"{where}: unknown key(s) {sorted(unknown)}")
    kind = raw.get("kind")
    if kind not in POSTING_KINDS:
        raise CatalogueError(f"{where}: 'kind' must be one of {list(POSTING_KINDS)}, got {kind!r}")
    fields = raw.get("fields", [])
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise CatalogueError(f"{where}: 'fields' must be a list of field names")
    for name in fields:
        if name not in POSTING_FIELDS:
            raise CatalogueError(f"{where}: unknown field {name!r} (known: {list(POSTING_FIELDS)})")
    if len(set(fields)) != len(fields):
        raise CatalogueError(f"{where}: a field is listed twice")
    if kind in ("debit", "credit") and "amount_fen" not in fields:
        raise CatalogueError(f"{where}: a {kind} needs the field 'amount_fen'")
    return PostingSpec(kind, tuple(fields))


def _number(
    table: Mapping[str, Any], key: str, where: str, low: float, high: float, default: float | None
) -> float:
    value = table.get(key, default)
    if value is None:
        raise CatalogueError(f"{where}: '{key}' is required (here or in [defaults])")
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise CatalogueError(f"{where}: '{key}' must be a number in [{low}, {high}], got {value!r}")
    return float(value)
