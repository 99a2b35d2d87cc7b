"""Device shadows: desired and reported configuration with version numbers. Pure.

The cloud owns ``desired`` and bumps ``desired_version`` on every change; the terminal owns
``reported`` and answers each delta with the version it applied. The delta is what the
terminal still has to change: keys whose desired value differs from the reported one (a
desired ``None`` means "remove"). Drift is a non-empty delta, or a reported version behind
the desired one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

#: A desired document may not grow without bound: it travels in one MQTT message.
MAX_KEYS = 200


@dataclass(frozen=True, slots=True)
class Shadow:
    desired: Mapping[str, Any] = field(default_factory=dict)
    desired_version: int = 0
    reported: Mapping[str, Any] = field(default_factory=dict)
    reported_version: int = 0


def merge(base: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """JSON merge patch (RFC 7386): nested objects merge, ``None`` deletes a key."""
    out = dict(base)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def delta(desired: Mapping[str, Any], reported: Mapping[str, Any]) -> dict[str, Any]:
    """The merge patch that takes ``reported`` to ``desired`` (only keys desired names)."""
    out: dict[str, Any] = {}
    for key, want in desired.items():
        have = reported.get(key)
        if isinstance(want, Mapping) and isinstance(have, Mapping):
            sub = delta(want, have)
            if sub:
                out[key] = sub
        elif want != have:
            out[key] = want
    return out


def set_desired(shadow: Shadow, patch: Mapping[str, Any]) -> Shadow:
    """Apply an operator's patch to desired; the version moves only if something changed."""
    desired = merge(shadow.desired, patch)
    if len(desired) > MAX_KEYS:
        raise ValueError(f"a desired document holds at most {MAX_KEYS} keys")
    if desired == shadow.desired:
        return shadow
    return replace(shadow, desired=desired, desired_version=shadow.desired_version + 1)


def report(shadow: Shadow, reported: Mapping[str, Any], version: int) -> Shadow:
    """The terminal's reported state after applying ``version``; stale reports are ignored."""
    if version < shadow.reported_version:
        return shadow
    return replace(shadow, reported=dict(reported), reported_version=version)


def pending_delta(shadow: Shadow) -> dict[str, Any]:
    """What still has to reach the terminal (empty when in sync)."""
    return delta(shadow.desired, shadow.reported)


def in_sync(shadow: Shadow) -> bool:
    return not pending_delta(shadow)
