"""Tellers' skills, stored per oversight account (``TellerProfile``, id = account id).

A teller is an account holding the ``teller`` role; its profile says which businesses it
serves (catalogue code -> proficiency 1-5) and which languages it speaks. ``check`` is the
one validation (the routing table's businesses, ``skills.LANGUAGES``), shared by the API,
the CLI and the demo stack; ``on_duty_skills`` is what the desk's board starts from.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

from cloud.auth.models import Account
from cloud.auth.roles import Role
from cloud.sessions.models import TellerProfile
from cloud.sessions.skills import LANGUAGES, Business, Skills, business_table

Table = Mapping[str, Business]


def check(
    businesses: Mapping[str, int], languages: Iterable[str], table: Table | None = None
) -> Skills:
    """The skills these values describe; ValueError naming the first bad one. ``table``:
    the desk's business table (default: the shipped catalogue's)."""
    langs = list(languages)
    skills = Skills.of(businesses, frozenset(langs), table)
    for lang in langs:
        if lang not in LANGUAGES:
            raise ValueError(f"unknown language {lang!r} (known: {', '.join(LANGUAGES)})")
    if not langs:
        raise ValueError("a teller needs at least one language")
    return skills


def parse_skill_args(skills: Iterable[str], level_for_all: int | None = None) -> dict[str, int]:
    """``["pension=4", "card_loss=2"]`` (CLI form) -> {code: level}; ``*=3`` means every
    catalogue business at level 3 (later entries override it)."""
    out: dict[str, int] = {}
    for item in skills:
        code, sep, level = item.partition("=")
        if not sep or not level.strip().isdigit():
            raise ValueError(f"skill {item!r}: write CODE=LEVEL, e.g. pension=4")
        if code.strip() == "*":
            out |= dict.fromkeys(business_table(), int(level))
        else:
            out[code.strip()] = int(level)
    if level_for_all is not None:
        out = dict.fromkeys(business_table(), level_for_all) | out
    return out


async def set_profile(
    teller_id: str,
    businesses: Mapping[str, int],
    languages: Iterable[str],
    now: dt.datetime,
    table: Table | None = None,
) -> Skills:
    """Store (create or replace) a teller's skills; the account must hold the teller role."""
    langs = sorted(set(languages))
    skills = check(businesses, langs, table)
    account = await Account.get_or_none(id=teller_id)
    if account is None or Role.TELLER.value not in account.roles:
        raise LookupError(f"{teller_id} is not a teller account")
    await TellerProfile.update_or_create(
        id=teller_id,
        defaults={"businesses": dict(businesses), "languages": langs, "updated_at": now},
    )
    return skills


def skills_of(profile: TellerProfile, table: Table | None = None) -> Skills | None:
    """A stored profile's skills; None if the catalogue no longer has one of its codes
    (the profile must be set again rather than routing on a guess)."""
    try:
        return check(profile.businesses, profile.languages, table)
    except ValueError:
        return None


async def teller_skills(teller_id: str, table: Table | None = None) -> Skills | None:
    """The skills of an enabled teller account, or None (no profile, not a teller)."""
    account = await Account.get_or_none(id=teller_id)
    if account is None or account.disabled or Role.TELLER.value not in account.roles:
        return None
    profile = await TellerProfile.get_or_none(id=teller_id)
    return None if profile is None else skills_of(profile, table)


async def on_duty_skills(table: Table | None = None) -> dict[str, Skills]:
    """Every enabled teller account with a valid profile: what the board starts with."""
    enabled = {a.id for a in await Account.filter(disabled=False) if Role.TELLER.value in a.roles}
    out: dict[str, Skills] = {}
    for profile in await TellerProfile.filter(id__in=sorted(enabled)):
        skills = skills_of(profile, table)
        if skills is not None:
            out[profile.id] = skills
    return out
