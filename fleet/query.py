"""Terminal selectors: the filters of the fleet search and of saved-query groups. Pure.

A selector is a conjunction of conditions over a terminal's facts (region levels, hardware
model, component versions, tags, presence, id prefix). It round-trips through a plain dict,
which is what a saved-query group stores, and ``from_dict`` refuses unknown keys so a typo
never silently selects the whole fleet.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

REGION_LEVELS = ("province", "city", "county", "village")
_TEXT_KEYS = (*REGION_LEVELS, "hw_model", "q")


@dataclass(frozen=True, slots=True)
class Facts:
    """What the registry knows about one terminal, as the selector sees it."""

    id: str
    region: Mapping[str, str]
    hw_model: str
    versions: Mapping[str, str]
    tags: frozenset[str]
    online: bool


@dataclass(frozen=True, slots=True)
class Selector:
    province: str | None = None
    city: str | None = None
    county: str | None = None
    village: str | None = None
    hw_model: str | None = None
    #: component -> exact version, e.g. {"agent": "0.1.0", "model.face": "2.0"}
    versions: Mapping[str, str] = field(default_factory=dict)
    #: every tag listed must be on the terminal
    tags: frozenset[str] = frozenset()
    online: bool | None = None
    #: terminal id prefix
    q: str | None = None

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Selector:
        """ValueError on unknown keys or wrongly typed values."""
        unknown = set(raw) - {*_TEXT_KEYS, "versions", "tags", "online"}
        if unknown:
            raise ValueError(f"unknown selector keys {sorted(unknown)}")
        text: dict[str, str | None] = {}
        for key in _TEXT_KEYS:
            value = raw.get(key)
            if value is not None and (not isinstance(value, str) or len(value) > 64):
                raise ValueError(f"selector {key!r} must be a short string")
            text[key] = value or None
        versions = raw.get("versions") or {}
        if not isinstance(versions, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in versions.items()
        ):
            raise ValueError("selector 'versions' must map component names to versions")
        tags = raw.get("tags") or []
        if isinstance(tags, str) or not all(isinstance(t, str) for t in tags):
            raise ValueError("selector 'tags' must be a list of strings")
        online = raw.get("online")
        if online is not None and not isinstance(online, bool):
            raise ValueError("selector 'online' must be true, false or null")
        return cls(
            **text,  # type: ignore[arg-type]
            versions=dict(versions),
            tags=frozenset(tags),
            online=online,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: getattr(self, k) for k in _TEXT_KEYS if getattr(self, k)}
        if self.versions:
            out["versions"] = dict(self.versions)
        if self.tags:
            out["tags"] = sorted(self.tags)
        if self.online is not None:
            out["online"] = self.online
        return out

    def matches(self, t: Facts) -> bool:
        for level in REGION_LEVELS:
            wanted = getattr(self, level)
            if wanted and t.region.get(level, "") != wanted:
                return False
        if self.hw_model and t.hw_model != self.hw_model:
            return False
        if any(t.versions.get(k) != v for k, v in self.versions.items()):
            return False
        if not self.tags <= t.tags:
            return False
        if self.online is not None and t.online != self.online:
            return False
        return not (self.q and not t.id.startswith(self.q))

    def column_filters(self) -> dict[str, Any]:
        """The part a database can index (exact columns); ``matches`` still decides."""
        out: dict[str, Any] = {k: getattr(self, k) for k in REGION_LEVELS if getattr(self, k)}
        if self.hw_model:
            out["hw_model"] = self.hw_model
        if "agent" in self.versions:
            out["agent_version"] = self.versions["agent"]
        if self.online is not None:
            out["online"] = self.online
        if self.q:
            out["id__startswith"] = self.q
        return out


@dataclass
class RegionNode:
    """One level of the region tree with its terminal counts."""

    name: str
    level: str
    total: int = 0
    online: int = 0
    children: dict[str, RegionNode] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "level": self.level,
            "total": self.total,
            "online": self.online,
            "children": [c.to_dict() for _, c in sorted(self.children.items())],
        }


def region_tree(terminals: Iterable[Facts]) -> RegionNode:
    """Province → city → county → village, each node counting its terminals (and online)."""
    root = RegionNode("", "root")
    for t in terminals:
        node = root
        node.total += 1
        node.online += t.online
        for level in REGION_LEVELS:
            name = t.region.get(level) or "?"
            node = node.children.setdefault(name, RegionNode(name, level))
            node.total += 1
            node.online += t.online
    return root
