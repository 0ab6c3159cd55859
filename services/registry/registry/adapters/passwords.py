"""Password hashes: argon2id with the registry's parameters (`PASSWORD_HASH_*`).

A hash carries its own parameters, so hashes made under others still verify. Hashing is deliberately
slow (~0.1 s of CPU): it runs off the event loop so one login does not stall every other request.
"""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


class _Passwords:
    """Verifying against a fixed hash when the user does not exist keeps the timing of both paths alike."""

    def __init__(self, hasher: PasswordHasher) -> None:
        self.hasher = hasher
        self.dummy_hash = hasher.hash("not-a-real-password")


_passwords = _Passwords(PasswordHasher())


def configure_password_hashing(*, time_cost: int, memory_kib: int, parallelism: int) -> None:
    """Set once at start from the settings, before the first request."""
    global _passwords
    current = _passwords.hasher
    if (current.time_cost, current.memory_cost, current.parallelism) != (time_cost, memory_kib, parallelism):
        hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)
        _passwords = _Passwords(hasher)


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_passwords.hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether the password matches; with no hash (no such user), a check as slow that fails."""
    try:
        ok = await asyncio.to_thread(
            _passwords.hasher.verify, password_hash or _passwords.dummy_hash, password
        )
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    return ok and password_hash is not None
