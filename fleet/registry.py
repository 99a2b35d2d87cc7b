"""The registry's database side: terminal facts, tags and group membership."""

from __future__ import annotations

from cloud import Terminal
from fleet.errors import GroupNotFound
from fleet.models import Group, TerminalTags
from fleet.query import Facts, Selector

_COLUMNS = ("id", "province", "city", "county", "village", "hw_model", "agent_version")
_COLUMNS_MORE = ("versions", "online")


async def search(selector: Selector) -> list[Facts]:
    """Terminals matching ``selector``, ordered by id: indexed columns first, then the rest.

    Plain value rows, not ORM objects: a saved query over the whole fleet (10,000
    terminals) is evaluated on every broadcast and rollout.
    """
    rows = (
        await Terminal.filter(**selector.column_filters())
        .order_by("id")
        .values_list(*_COLUMNS, *_COLUMNS_MORE)
    )
    tags = {t: list(v) for t, v in await TerminalTags.all().values_list("terminal_id", "tags")}
    found = []
    for tid, province, city, county, village, hw_model, agent, versions, online in rows:
        versions = dict(versions or {})
        if agent:
            versions.setdefault("agent", agent)
        facts = Facts(
            id=tid,
            region={"province": province, "city": city, "county": county, "village": village},
            hw_model=hw_model,
            versions=versions,
            tags=frozenset(tags.get(tid, ())),
            online=online,
        )
        if selector.matches(facts):
            found.append(facts)
    return found


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
