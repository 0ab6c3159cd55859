"""Token verification and access rules shared by every service.

Tokens are RS256 JWTs signed by the registry; services verify them offline against the registry's
JWKS (cached, refetched when a token names an unknown `kid`), checking issuer, audience and expiry.
The JWKS holds every key that verifies (across a rotation, the new and the old); a key with an `exp`
member (seconds since the epoch: a retired key) verifies nothing after it, whether or not the JWKS has
been fetched again since.
The scope rules (who may see which cooperative) live here so that every service applies the same ones.

A client sends the same token with every request until it expires, and checking it costs far more
than the request it guards (an RSA signature and PyJWT's pure-Python base64 checks, about half a
millisecond). So `TokenVerifier` remembers the tokens it has verified, by their exact text, in a bounded
LRU, until their `exp`: a remembered token is still checked for expiry on every request, and still
refused once the key that signed it is no longer the key source's key for its `kid` (rotation). Only
tokens that passed every check are remembered; a refused token is verified afresh each time.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from jwt import PyJWK

from kkmp_shared import clock
from kkmp_shared.errors import ApiError, forbidden, not_found

Role = Literal["admin", "officer", "coop_manager", "supplier", "service"]
ROLES: tuple[str, ...] = ("admin", "officer", "coop_manager", "supplier", "service")


@dataclass(frozen=True)
class Principal:
    sub: str
    role: str
    cooperative_id: str | None = None
    supplier_id: str | None = None
    kecamatan_codes: tuple[str, ...] = ()
    username: str | None = None
    claims: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def is_staff(self) -> bool:
        """Dinkopdag: administrators and officers."""
        return self.role in ("admin", "officer")

    def covers_kecamatan(self, kecamatan_code: str | None) -> bool:
        """Admins and services see the whole city; an officer with no codes too; else only its codes."""
        if self.role in ("admin", "service"):
            return True
        if self.role == "officer":
            return not self.kecamatan_codes or kecamatan_code in self.kecamatan_codes
        return False

    def can_read_cooperative(self, cooperative_id: str, kecamatan_code: str | None) -> bool:
        if self.role == "coop_manager":
            return self.cooperative_id == cooperative_id
        return self.covers_kecamatan(kecamatan_code)

    def can_write_cooperative(self, cooperative_id: str, kecamatan_code: str | None) -> bool:
        if self.role == "coop_manager":
            return self.cooperative_id == cooperative_id
        if self.role == "officer":
            return self.covers_kecamatan(kecamatan_code)
        return self.role in ("admin", "service")

    def kecamatan_filter(self) -> list[str] | None:
        """The kecamatan a list must be limited to, or None for no limit."""
        if self.role == "officer" and self.kecamatan_codes:
            return list(self.kecamatan_codes)
        return None


def ensure_can_read(
    principal: Principal, cooperative_id: str, kecamatan_code: str | None, what: str = "cooperative"
) -> None:
    """404, not 403, on reads: revealing that another cooperative's object exists would leak."""
    if not principal.can_read_cooperative(cooperative_id, kecamatan_code):
        raise not_found(what)


def ensure_can_write(principal: Principal, cooperative_id: str, kecamatan_code: str | None) -> None:
    if principal.role == "supplier":
        raise forbidden("Suppliers cannot change a cooperative's data.")
    if not principal.can_write_cooperative(cooperative_id, kecamatan_code):
        raise forbidden("You may only change your own cooperative's data.")


class KeySource:
    """Where verification keys come from; `get(kid)` returns the key or None."""

    async def get(self, kid: str | None) -> Any:
        raise NotImplementedError


def _jwks_keys(jwks: dict[str, Any]) -> tuple[dict[str | None, Any], dict[str | None, float]]:
    """The keys of a JWKS by kid, and the `exp` of those that have one."""
    keys = {k.get("kid"): PyJWK(k).key for k in jwks.get("keys", [])}
    expires = {k.get("kid"): float(k["exp"]) for k in jwks.get("keys", []) if "exp" in k}
    return keys, expires


def _in_force(key: Any, expires: float | None) -> Any:
    return key if expires is None or expires > clock.system_seconds() else None


class StaticKeySource(KeySource):
    def __init__(self, jwks: dict[str, Any]) -> None:
        self.keys, self.expires = _jwks_keys(jwks)

    async def get(self, kid: str | None) -> Any:
        if kid is None and len(self.keys) == 1:
            kid = next(iter(self.keys))
        return _in_force(self.keys.get(kid), self.expires.get(kid))

    @classmethod
    def from_file(cls, path: Path) -> StaticKeySource:
        return cls(json.loads(path.read_text()))


class JwksKeySource(KeySource):
    """Fetches the registry's JWKS; refetches on an unknown kid, at most once per `min_refresh_s`."""

    def __init__(self, url: str, *, ttl_s: float = 3600, min_refresh_s: float = 10) -> None:
        self.url = url
        self.ttl_s = ttl_s
        self.min_refresh_s = min_refresh_s
        self._keys: dict[str | None, Any] = {}
        self._expires: dict[str | None, float] = {}
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    def _fetch(self) -> dict[str, Any]:
        # The standard library rather than httpx: importing httpx (which loads its command line, rich
        # and pygments with it) costs each service about 7 MB of memory for one request an hour.
        request = urllib.request.Request(self.url, headers={"Accept": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as response:  # HTTP errors raise (OSError)
            jwks: dict[str, Any] = json.loads(response.read())
        return jwks

    async def _refresh(self) -> None:
        jwks = await asyncio.to_thread(self._fetch)
        self._keys, self._expires = _jwks_keys(jwks)
        self._fetched_at = time.monotonic()

    async def get(self, kid: str | None) -> Any:
        stale = time.monotonic() - self._fetched_at > self.ttl_s
        if kid in self._keys and not stale:
            return _in_force(self._keys[kid], self._expires.get(kid))
        async with self._lock:
            if (kid not in self._keys or stale) and time.monotonic() - self._fetched_at > self.min_refresh_s:
                try:
                    await self._refresh()
                except (OSError, ValueError) as exc:
                    if not self._keys:
                        raise ApiError(
                            503,
                            "auth_unavailable",
                            "Token keys cannot be fetched from the registry right now.",
                        ) from exc
        return _in_force(self._keys.get(kid), self._expires.get(kid))


@dataclass(frozen=True, slots=True)
class _Verified:
    principal: Principal
    kid: str | None
    key: Any
    exp: int


class TokenVerifier:
    def __init__(self, keys: KeySource, *, issuer: str, audience: str, cache_size: int = 2048) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.cache_size = cache_size
        # Token text -> what its verification established; least recently used first.
        self._verified: OrderedDict[str, _Verified] = OrderedDict()

    async def cached(self, token: str) -> Principal | None:
        """The principal of a token this verifier has accepted before and would accept now; None for
        any other token (which `verify` alone may judge)."""
        hit = self._verified.get(token)
        if hit is None:
            return None
        # PyJWT's expiry rule (expired when int(exp) <= now, no leeway), and the same key still in
        # force for its kid; otherwise forget it, so that `verify` checks it in full (and answers the error).
        if hit.exp > clock.system_seconds() and await self.keys.get(hit.kid) is hit.key:
            self._verified.move_to_end(token)
            return hit.principal
        self._verified.pop(token, None)
        return None

    async def verify(self, token: str) -> Principal:
        cached = await self.cached(token)
        if cached is not None:
            return cached
        principal, kid, key = await self._verify(token)
        if self.cache_size > 0:
            self._verified[token] = _Verified(principal, kid, key, int(principal.claims["exp"]))
            if len(self._verified) > self.cache_size:
                self._verified.popitem(last=False)
        return principal

    async def _verify(self, token: str) -> tuple[Principal, str | None, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise unauthorized("The token is malformed.") from exc
        if header.get("alg") != "RS256":
            raise unauthorized("The token's algorithm is not accepted.")
        kid = header.get("kid")
        key = await self.keys.get(kid)
        if key is None:
            raise unauthorized("The token was signed by an unknown key.")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise unauthorized("The token has expired.") from exc
        except jwt.PyJWTError as exc:
            raise unauthorized(f"The token is not valid: {exc}.") from exc
        role = claims.get("role")
        if role not in ROLES:
            raise unauthorized("The token carries no known role.")
        principal = Principal(
            sub=str(claims["sub"]),
            role=role,
            cooperative_id=claims.get("cooperative_id"),
            supplier_id=claims.get("supplier_id"),
            kecamatan_codes=tuple(claims.get("kecamatan_codes") or ()),
            username=claims.get("username"),
            claims=claims,
        )
        return principal, kid, key


def unauthorized(message: str = "Authentication is required.") -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


_bearer = HTTPBearer(auto_error=False)


async def get_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise unauthorized()
    verifier: TokenVerifier = request.app.state.verifier
    principal = await verifier.verify(credentials.credentials)
    request.state.principal = principal
    return principal


async def get_optional_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal | None:
    if credentials is None:
        return None
    return await get_principal(request, credentials)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]
OptionalPrincipal = Annotated[Principal | None, Depends(get_optional_principal)]


def require_roles(*roles: str) -> Any:
    """A dependency that lets only these roles through (403 for the others)."""

    async def check(principal: CurrentPrincipal) -> Principal:
        if principal.role not in roles:
            raise forbidden(f"This needs one of the roles: {', '.join(roles)}.")
        return principal

    return Depends(check)


StaffPrincipal = Annotated[Principal, require_roles("admin", "officer")]
AdminPrincipal = Annotated[Principal, require_roles("admin")]
