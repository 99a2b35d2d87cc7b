"""The registry's database side: terminal facts, tags and group membership."""

from __future__ import annotations

from cloud.models import Terminal
from fleet.models import Group, TerminalTags
from fleet.query import Facts, Selector


class GroupNotFound(LookupError):
    pass


def _facts(t: Terminal, tags: dict[str, list[str]]) -> Facts:
    versions = dict(t.versions or {})
    if t.agent_version:
        versions.setdefault("agent", t.agent_version)
    return Facts(
        id=t.id,
        region={"province": t.province, "city": t.city, "county": t.county, "village": t.village},
        hw_model=t.hw_model,
        versions=versions,
        tags=frozenset(tags.get(t.id, ())),
        online=t.online,
    )


async def search(selector: Selector) -> list[Facts]:
    """Terminals matching ``selector``, ordered by id: indexed columns first, then the rest."""
    rows = await Terminal.filter(**selector.column_filters()).order_by("id")
    ids = [t.id for t in rows]
    tags = (
        {row.terminal_id: row.tags for row in await TerminalTags.filter(terminal_id__in=ids)}
        if ids
        else {}
    )
    return [f for f in (_facts(t, tags) for t in rows) if selector.matches(f)]


async def set_tags(terminal_id: str, tags: list[str]) -> list[str]:
    clean = sorted({t.strip() for t in tags if t.strip()})
    await TerminalTags.update_or_create({"tags": clean}, terminal_id=terminal_id)
    return clean


async def members(name: str) -> list[str]:
    """The terminal ids a group names now (a saved query is evaluated on every call)."""
    group = await Group.get_or_none(name=name)
    if group is None:
        raise GroupNotFound(name)
    if group.kind == "static":
        return sorted(group.members)
    return [f.id for f in await search(Selector.from_dict(group.selector))]
