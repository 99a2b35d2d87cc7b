"""Offline check that a sealed timeline shows the business's required process (pure).

An intact chain proves nothing was changed after sealing; this proves what was sealed is a
proper session: the steps appear in the catalogue's order, a session marked ``completed``
has every required step passed, and the supervisor authorisation came from someone other
than the serving teller.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cloud.evidence.chain import Event


def check(
    events: Sequence[Event], required: Sequence[str], operator: Mapping[str, Any]
) -> list[str]:
    steps = [e for e in events if e.kind == "step"]
    done = [str(e.data.get("step")) for e in steps]
    problems = []
    if done != list(required[: len(done)]):
        problems.append(f"process: steps {done} are not in the required order {list(required)}")
    ends = [e for e in events if e.kind == "session_end"]
    if ends and ends[-1].data.get("outcome") == "completed":
        passed = {str(e.data.get("step")) for e in steps if e.data.get("passed", True)}
        missing = [s for s in required if s not in passed]
        if missing:
            problems.append(f"process: marked completed without required step(s) {missing}")
    teller = operator.get("teller_id")
    for e in steps:
        if e.data.get("step") == "supervisor_authorisation" and e.actor == teller:
            problems.append(f"process: supervisor authorisation by the serving teller {teller}")
    return problems
