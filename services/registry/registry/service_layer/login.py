"""Logging in: the OAuth2 grants (a person's password, a service's client secret), the throttle on
wrong guesses, and changing one's own password, which is checked like a login.

A failed attempt must be counted even though the caller is refused: `Login` therefore opens its own
units of work and raises the refusal after the one that counted it has committed.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from kkmp_shared import clock
from kkmp_shared.errors import ApiError, not_found
from kkmp_shared.unit_of_work import UnitOfWork
from sqlalchemy.ext.asyncio import AsyncSession

from registry.adapters import passwords, users
from registry.domain.ids import is_id
from registry.service_layer.commands import ChangePassword, ClientCredentialsGrant, PasswordGrant


class Signer(Protocol):
    async def sign(self, claims: dict[str, Any], *, issuer: str, audience: str, ttl_s: int) -> str: ...


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int


@dataclass(frozen=True)
class TokenIssuer:
    """Signs the claims of whoever logged in, for this issuer and audience, for `ttl_s` seconds."""

    signer: Signer
    issuer: str
    audience: str
    ttl_s: int

    async def issue(self, claims: dict[str, Any]) -> IssuedToken:
        token = await self.signer.sign(claims, issuer=self.issuer, audience=self.audience, ttl_s=self.ttl_s)
        return IssuedToken(token, self.ttl_s)


@dataclass(frozen=True)
class Throttle:
    """At most `max_failures` wrong guesses per username (or client), and `max_failures_per_ip` per
    client address, within the last `window_s` seconds."""

    max_failures: int
    max_failures_per_ip: int
    window_s: int

    def window_start(self) -> datetime:
        return clock.now() - timedelta(seconds=self.window_s)

    def refusal(self) -> ApiError:
        return ApiError(
            429,
            "rate_limited",
            "Too many failed attempts; try again later.",
            headers={"Retry-After": str(self.window_s)},
        )

    async def check(
        self, session: AsyncSession, since: datetime, key: str, ip_key: str | None = None
    ) -> None:
        """Refuse (429) when the key, or the address, has failed too often lately."""
        if await users.recent_failures(session, key, since) >= self.max_failures or (
            ip_key is not None
            and await users.recent_failures(session, ip_key, since) >= self.max_failures_per_ip
        ):
            raise self.refusal()

    async def count_failure(self, session: AsyncSession, keys: Sequence[str], since: datetime) -> None:
        await users.record_failure(session, keys, clock.now(), forget_before=since)


def claims_for(user: dict[str, Any]) -> dict[str, Any]:
    """What a person's token says: who, which role, and the scope the role is bound to."""
    claims: dict[str, Any] = {"sub": user["id"], "role": user["role"], "username": user["username"]}
    if user["role"] == "coop_manager":
        claims["cooperative_id"] = user["cooperative_id"]
    if user["role"] == "supplier":
        claims["supplier_id"] = user["supplier_id"]
    if user["role"] == "officer":
        claims["kecamatan_codes"] = user["kecamatan_codes"]
        claims["supervisor"] = bool(user.get("supervisor"))
    return claims


def _secret_matches(expected: str | None, given: str) -> bool:
    """Constant-time comparison, so the secret cannot be guessed byte by byte from response times."""
    return expected is not None and hmac.compare_digest(expected.encode(), given.encode())


@dataclass(frozen=True)
class Login:
    """`units` opens a unit of work (`Platform.unit_of_work`); `clients` are the service accounts
    (client id: secret)."""

    units: Callable[[], AbstractAsyncContextManager[UnitOfWork]]
    throttle: Throttle
    tokens: TokenIssuer
    clients: Mapping[str, str]

    async def password_grant(self, command: PasswordGrant) -> IssuedToken:
        user_key = f"user:{command.username.lower()}"
        ip_key = f"ip:{command.client_ip}"
        since = self.throttle.window_start()
        async with self.units() as uow:
            await self.throttle.check(uow.session, since, user_key, ip_key)
            row = await users.active_by_username(uow.session, command.username.lower())
            ok = await passwords.verify_password(row.password_hash if row else None, command.password)
            if ok:
                await users.clear_failures(uow.session, user_key)
            else:
                await self.throttle.count_failure(uow.session, [user_key, ip_key], since)
        if not ok:
            raise ApiError(
                401,
                "invalid_credentials",
                "Wrong username or password.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return await self.tokens.issue(claims_for(users.user_out(row)))

    async def client_credentials_grant(self, command: ClientCredentialsGrant) -> IssuedToken:
        """A client secret is a password: guessing it is throttled like a login, per client and address."""
        client_id, secret = command.client_id, command.client_secret
        client_key = f"client:{(client_id or '').lower()}"
        ip_key = f"ip:{command.client_ip}"
        since = self.throttle.window_start()
        async with self.units() as uow:
            await self.throttle.check(uow.session, since, client_key, ip_key)
            ok = bool(client_id and secret and _secret_matches(self.clients.get(client_id), secret))
            if ok:
                await users.clear_failures(uow.session, client_key)
            else:
                await self.throttle.count_failure(uow.session, [client_key, ip_key], since)
        if not ok:
            raise ApiError(
                401,
                "invalid_client",
                "Unknown client or wrong secret.",
                headers={"WWW-Authenticate": "Basic"},
            )
        return await self.tokens.issue(
            {"sub": f"service:{client_id}", "role": "service", "username": client_id}
        )

    async def change_password(self, command: ChangePassword) -> None:
        """The current password is checked like a login: guessing it through this is throttled too."""
        key = f"user:{command.login.lower()}"
        since = self.throttle.window_start()
        async with self.units() as uow:
            await self.throttle.check(uow.session, since, key)
            row = await users.get(uow.session, command.user_id) if is_id(command.user_id) else None
            if row is None:
                raise not_found("user")
            ok = await passwords.verify_password(row.password_hash, command.current_password)
            if ok:
                new_hash = await passwords.hash_password(command.new_password)
                await users.set_password_hash(uow.session, command.user_id, new_hash)
            else:
                await self.throttle.count_failure(uow.session, [key], since)
        if not ok:
            raise ApiError(
                403,
                "wrong_password",
                "The current password is wrong.",
                [{"field": "current_password", "message": "wrong password"}],
            )
