"""Roles and what each may see (data, not code).

``REVEAL`` says which roles may see which personal field in full; everyone else sees the
masked form, and every full reveal is written to the audit log.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class Role(StrEnum):
    TELLER = "teller"
    SUPERVISOR = "supervisor"
    REVIEWER = "reviewer"
    FLEET_OPERATOR = "fleet_operator"
    AUDITOR = "auditor"
    ADMIN = "admin"


#: Roles that may see a session's evidence whoever served it (tellers see only their own).
SEE_ALL_SESSIONS = frozenset({Role.SUPERVISOR, Role.REVIEWER, Role.AUDITOR})

#: field -> roles that may reveal it in full. Tellers work from the masked form: they have
#: the customer on video and the card in the reader; a full ID number is a supervisor's or
#: auditor's need (fraud follow-up, court requests), not a teller's.
REVEAL: Mapping[str, frozenset[Role]] = {
    "id_number": frozenset({Role.SUPERVISOR, Role.AUDITOR}),
    "card_number": frozenset({Role.SUPERVISOR, Role.AUDITOR}),
    "phone": frozenset({Role.SUPERVISOR, Role.AUDITOR, Role.REVIEWER}),
    "name": frozenset({Role.TELLER, Role.SUPERVISOR, Role.REVIEWER, Role.AUDITOR}),
}


def may_reveal(roles: frozenset[Role], field: str) -> bool:
    return bool(roles & REVEAL.get(field, frozenset()))


def may_view_session(account_id: str, roles: frozenset[Role], operator_id: str) -> bool:
    """A teller sees the sessions they served; supervisors, reviewers, auditors see all."""
    return operator_id == account_id or bool(roles & SEE_ALL_SESSIONS)


#: Who may look at the fleet: its operators, and the people who answer for the terminals'
#: business (supervisors, auditors). Tellers and reviewers work on sessions, not devices.
FLEET_READERS = (Role.FLEET_OPERATOR, Role.SUPERVISOR, Role.AUDITOR, Role.ADMIN)


#: Who may grant (or take away) each role over the API. ``admin`` manages the workforce;
#: the two oversight roles are granted only by someone already holding them, so an admin
#: alone cannot make a supervisor (who authorises high-risk steps and listens in to calls)
#: or an auditor (who reads the audit log and reveals personal data) — not even a second
#: account of their own. The first supervisor and auditor come from ``cuntong accounts
#: create`` on the host (docs/oversight.md, "Who grants which role").
GRANTED_BY: Mapping[Role, Role] = {
    Role.TELLER: Role.ADMIN,
    Role.REVIEWER: Role.ADMIN,
    Role.FLEET_OPERATOR: Role.ADMIN,
    Role.ADMIN: Role.ADMIN,
    Role.SUPERVISOR: Role.SUPERVISOR,
    Role.AUDITOR: Role.AUDITOR,
}

#: Roles an account holding ``admin`` may never grant, even if it also holds them: the
#: admin half (making the account) and the granting half must be two people.
OVERSIGHT = frozenset({Role.SUPERVISOR, Role.AUDITOR})


def grant_refusal(granter: frozenset[Role], role: Role) -> str | None:
    """Why an account holding ``granter`` may not grant ``role``, or None if it may."""
    needed = GRANTED_BY[role]
    if needed not in granter:
        return f"role {role.value} is granted by an account holding {needed.value}"
    if role in OVERSIGHT and Role.ADMIN in granter:
        return f"role {role.value} cannot be granted by an account that also holds admin"
    return None
