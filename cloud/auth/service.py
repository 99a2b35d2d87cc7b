"""Account operations the API and the CLI share: create, log in, log out."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import secrets
from collections.abc import Iterable

from argon2 import PasswordHasher

from cloud.auth import passwords
from cloud.auth.deps import token_digest
from cloud.auth.models import Account, LoginSession
from cloud.auth.roles import Role


# Verifying against this when the account does not exist keeps the response time the same,
# so login timing does not reveal which account names exist.
@functools.cache
def _dummy_hash(hasher: PasswordHasher) -> str:
    return hasher.hash("not-a-real-password-0")


def _verify_dummy(password: str, hasher: PasswordHasher) -> None:
    passwords.verify_password(_dummy_hash(hasher), password, hasher)


async def create_account(
    account_id: str,
    password: str,
    roles: Iterable[Role | str],
    now: dt.datetime,
    display_name: str = "",
    hasher: PasswordHasher = passwords.HASHER,
) -> Account:
    checked = sorted({Role(r).value for r in roles})
    if not checked:
        raise ValueError("an account needs at least one role")
    return await Account.create(
        id=account_id,
        display_name=display_name,
        roles=checked,
        password_hash=passwords.hash_password(password, hasher),
        created_at=now,
    )


async def login(
    account_id: str,
    password: str,
    now: dt.datetime,
    ttl: dt.timedelta,
    hasher: PasswordHasher = passwords.HASHER,
) -> tuple[str, LoginSession] | None:
    """A new bearer token and its session, or None for a wrong name or password."""
    account = await Account.get_or_none(id=account_id)
    # Argon2 takes tens of milliseconds by design; in a thread (it releases the GIL) the
    # event loop keeps serving everyone else while a shift's tellers log in.
    if account is None or account.disabled:
        await asyncio.to_thread(_verify_dummy, password, hasher)
        return None
    stored = account.password_hash
    if not await asyncio.to_thread(passwords.verify_password, stored, password, hasher):
        return None
    if hasher.check_needs_rehash(account.password_hash):
        account.password_hash = await asyncio.to_thread(hasher.hash, password)
        await account.save(update_fields=["password_hash"])
    token = secrets.token_urlsafe(32)
    session = await LoginSession.create(
        token_sha256=token_digest(token), account=account, created_at=now, expires_at=now + ttl
    )
    return token, session


async def logout(token: str) -> None:
    await LoginSession.filter(token_sha256=token_digest(token)).update(revoked=True)
