"""Password hashing with Argon2id (argon2-cffi), behind two functions."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

#: RFC 9106 "second recommended" profile is argon2-cffi's default (64 MiB, t=3, p=4).
HASHER = PasswordHasher()
MIN_LENGTH = 10


def hash_password(password: str, hasher: PasswordHasher = HASHER) -> str:
    if len(password) < MIN_LENGTH:
        raise ValueError(f"password must be at least {MIN_LENGTH} characters")
    return hasher.hash(password)


def verify_password(stored: str, password: str, hasher: PasswordHasher = HASHER) -> bool:
    try:
        return hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False
