"""What a teller must know to serve a request: business types, languages, bullseye rings.

All tables are data a bank can edit without touching the routing code:

- ``business_table``: each business type's group (used when a ring widens to "anyone in
  the group") and whether it is high-risk (served first), derived from the one business
  catalogue, ``cloud/businesses.toml``; a request's business is any catalogue code.
- ``LANGUAGES``: what the customer chose at the terminal, and which teller languages may
  stand in once a ring allows fallback. Dialects fall back to Mandarin; Chinese Sign
  Language never does (a deaf customer gains nothing from a hearing-only teller); minority
  languages fall back to Mandarin only in the widest ring, on the bank's own policy that
  most such customers in the pilot counties are bilingual.
- ``Ring``: Genesys-style bullseye. A request starts in ring 0 (exact skills, high
  proficiency) and widens as it waits; rings must only ever widen.

Proficiency is 1–5 as in Amazon Connect. Everything here is pure, except that the shipped
catalogue is read from its file on first use.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from cloud.catalogue import Catalogue, Risk, load_catalogue


@dataclass(frozen=True, slots=True)
class Business:
    group: str
    high_risk: bool = False


@dataclass(frozen=True, slots=True)
class Language:
    name: str
    #: Teller languages accepted when the ring allows fallback (dialect → Mandarin, ...).
    fallback: tuple[str, ...] = ()
    #: Fallback only in a ring with ``minority_fallback`` (the widest one by default).
    minority: bool = False


def business_table(catalogue: Catalogue | None = None) -> Mapping[str, Business]:
    """Routing's view of the workflow catalogue: each business code's group, and whether
    it is high-risk (the catalogue's ``risk = "high"``). Without a catalogue, the shipped
    one (read once)."""
    if catalogue is None:
        return _shipped_table()
    return {
        code: Business(b.group, b.risk is Risk.HIGH) for code, b in catalogue.businesses.items()
    }


@functools.cache
def _shipped_table() -> Mapping[str, Business]:
    return business_table(load_catalogue())


LANGUAGES: Final[Mapping[str, Language]] = {
    "cmn": Language("Mandarin (Putonghua)"),
    "zh-shaanxi": Language("Shaanxi dialect", fallback=("cmn",)),
    "zh-sichuan": Language("Sichuan dialect", fallback=("cmn",)),
    "csl": Language("Chinese Sign Language"),
    "ug": Language("Uyghur", fallback=("cmn",), minority=True),
    "bo": Language("Tibetan", fallback=("cmn",), minority=True),
    "ii": Language("Nuosu (Yi)", fallback=("cmn",), minority=True),
    "mn": Language("Mongolian", fallback=("cmn",), minority=True),
}


@dataclass(frozen=True, slots=True)
class Ring:
    """One bullseye ring: who may serve a request once it has waited ``opens_after`` s."""

    opens_after: float
    min_proficiency: int
    #: Any teller with some proficiency in the business's group qualifies.
    business_group: bool = False
    #: Dialect fallbacks (zh-shaanxi → cmn) are accepted.
    language_fallback: bool = False
    #: Minority-language fallbacks are accepted too.
    minority_fallback: bool = False


DEFAULT_RINGS: Final = (
    Ring(0.0, 3),
    Ring(30.0, 1),
    Ring(90.0, 1, language_fallback=True),
    Ring(180.0, 1, business_group=True, language_fallback=True, minority_fallback=True),
)


def check_rings(rings: tuple[Ring, ...]) -> None:
    """Refuse ring lists that would narrow: later rings must accept everyone earlier ones did."""
    if not rings or rings[0].opens_after != 0:
        raise ValueError("the first ring must open at 0 s")
    for a, b in itertools.pairwise(rings):
        widens = (
            b.opens_after > a.opens_after
            and b.min_proficiency <= a.min_proficiency
            and b.business_group >= a.business_group
            and b.language_fallback >= a.language_fallback
            and b.minority_fallback >= a.minority_fallback
        )
        if not widens:
            raise ValueError(f"ring {b} does not widen {a}")


@dataclass(frozen=True, slots=True)
class Skills:
    """A teller's proficiency (1–5) per business type and the languages they speak."""

    businesses: Mapping[str, int]
    languages: frozenset[str]
    #: Business groups the teller covers; derived, for the ring that widens to groups.
    groups: frozenset[str] = field(default=frozenset())

    @classmethod
    def of(
        cls,
        businesses: Mapping[str, int],
        languages: set[str] | frozenset[str] | tuple[str, ...],
        catalogue: Mapping[str, Business] | None = None,
    ) -> Skills:
        """Skills with the group set filled in; unknown business types are refused."""
        catalogue = business_table() if catalogue is None else catalogue
        for name, level in businesses.items():
            if name not in catalogue:
                raise ValueError(f"unknown business type {name!r}")
            if not 1 <= level <= 5:
                raise ValueError(f"proficiency for {name!r} must be 1-5, got {level}")
        groups = frozenset(catalogue[name].group for name in businesses)
        return cls(dict(businesses), frozenset(languages), groups)


def speaks(
    skills: Skills, language: str, ring: Ring, languages: Mapping[str, Language] = LANGUAGES
) -> bool:
    """Can this teller talk with the customer in this ring?"""
    if language in skills.languages:
        return True
    lang = languages[language]
    allowed = ring.minority_fallback if lang.minority else ring.language_fallback
    return allowed and any(f in skills.languages for f in lang.fallback)


def qualifies(
    skills: Skills,
    business: str,
    language: str,
    ring: Ring,
    catalogue: Mapping[str, Business] | None = None,
    languages: Mapping[str, Language] = LANGUAGES,
) -> bool:
    """Does a teller with these skills qualify for (business, language) in this ring?"""
    catalogue = business_table() if catalogue is None else catalogue
    if not speaks(skills, language, ring, languages):
        return False
    if skills.businesses.get(business, 0) >= ring.min_proficiency:
        return True
    return ring.business_group and catalogue[business].group in skills.groups
