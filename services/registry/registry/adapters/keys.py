"""The registry's token signing keys and the tokens it signs.

`SigningKey` is one RSA key. The key a registry starts with comes from a secret (`SIGNING_KEY`, a PEM,
or `SIGNING_KEY_FILE`, a path); in demo mode, when neither is given, a key generated on first start
and kept in the data directory. `KeyStore` keeps the keys in the registry's database, so that every
replica signs with the same key and publishes the same JWKS: the starting key is added to it if it is
not there yet, and `kkmp keys rotate` adds a new one. The newest key not retired signs; a retired key
still verifies (and is published, with its `exp`) until the longest token lifetime has passed, then
verifies nothing; `kkmp keys prune` deletes it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from jwt.algorithms import RSAAlgorithm
from kkmp_shared import clock
from kkmp_shared.auth import KeySource
from kkmp_shared.db import Database, on_sqlite
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from registry.adapters import orm

# Token clocks may disagree by this much between machines: a retired key verifies this much longer.
CLOCK_LEEWAY_S = 60
# pg advisory lock of changes to the key set ("KKMPKEY" as an integer): replicas starting together
# with a new secret add it once.
KEYS_LOCK = 0x4B4B4D504B4559


class SigningKey:
    def __init__(self, private_key: RSAPrivateKey) -> None:
        self.private_key = private_key
        public_jwk = json.loads(RSAAlgorithm.to_jwk(private_key.public_key()))
        # RFC 7638 thumbprint as the key id: stable across restarts, new when the key is rotated.
        canonical = json.dumps({k: public_jwk[k] for k in ("e", "kty", "n")}, separators=(",", ":"))
        self.kid = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).decode().rstrip("=")
        self.public_jwk = {**public_jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(rsa.generate_private_key(public_exponent=65537, key_size=2048))

    @classmethod
    def from_pem(cls, pem: bytes) -> SigningKey:
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, RSAPrivateKey):
            raise ValueError("the signing key must be an RSA private key (PEM)")
        return cls(key)

    def pem(self) -> str:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()

    @classmethod
    def load_or_create(cls, path: Path) -> SigningKey:
        if path.exists():
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            assert isinstance(key, RSAPrivateKey)
            return cls(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        return cls(key)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.public_jwk]}

    def sign(self, claims: dict[str, Any], *, issuer: str, audience: str, ttl_s: int) -> str:
        now = int(clock.system_seconds())
        payload = {**claims, "iss": issuer, "aud": audience, "iat": now, "nbf": now, "exp": now + ttl_s}
        return jwt.encode(payload, self.private_key, algorithm="RS256", headers={"kid": self.kid})


@dataclass(frozen=True)
class StoredKey:
    kid: str
    created_at: float
    not_after: float | None

    @property
    def signs(self) -> bool:
        return self.not_after is None


class KeyStore(KeySource):
    """The signing keys in the registry's database, shared by its replicas.

    Signing and the JWKS read the table each time (a token is issued after a login's own queries; the
    JWKS is fetched rarely), so a rotation is seen by every replica at once. Verification (the
    registry's own routes, on every request) reads it at most every `refresh_s`, and at once for a
    `kid` it does not know; a key past its `not_after` verifies nothing, whenever the table was read.
    """

    def __init__(self, db: Database, *, refresh_s: float = 5.0) -> None:
        self.db = db
        self.refresh_s = refresh_s
        self._private: dict[str, SigningKey] = {}
        # kid -> (public key, not_after); the same key object for a kid, as `TokenVerifier` compares.
        self._verifying: dict[str, tuple[Any, float | None]] = {}
        self._read_at = float("-inf")

    async def _rows(self, session: AsyncSession) -> list[Any]:
        k = orm.signing_keys
        return list(
            (
                await session.execute(
                    select(k.c.kid, k.c.private_pem, k.c.created_at, k.c.not_after).order_by(
                        k.c.created_at.desc(), k.c.kid
                    )
                )
            ).all()
        )

    def _parsed(self, row: Any) -> SigningKey:
        key = self._private.get(row.kid)
        if key is None:
            key = self._private[row.kid] = SigningKey.from_pem(row.private_pem.encode())
        return key

    async def install(self, key: SigningKey, *, retire_after_s: float) -> bool:
        """Add the key a registry starts with, unless the store has it already; added, it signs from
        now on and the keys that signed until now retire after `retire_after_s`. True when added."""
        k = orm.signing_keys
        async with self.db.transaction() as session:
            if not on_sqlite(session):
                await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": KEYS_LOCK})
            if (await session.execute(select(k.c.kid).where(k.c.kid == key.kid))).first() is not None:
                return False
            await add_key(session, key, retire_after_s=retire_after_s)
        return True

    async def signing_key(self) -> SigningKey:
        async with self.db.read_session() as session:
            rows = [row for row in await self._rows(session) if row.not_after is None]
        if not rows:
            raise RuntimeError("no signing key in the registry's database")
        return self._parsed(rows[0])

    async def sign(self, claims: dict[str, Any], *, issuer: str, audience: str, ttl_s: int) -> str:
        key = await self.signing_key()
        return key.sign(claims, issuer=issuer, audience=audience, ttl_s=ttl_s)

    async def jwks(self) -> dict[str, Any]:
        """Every key that verifies now, newest first; a retired one with its `exp` (when it stops)."""
        now = clock.system_seconds()
        async with self.db.read_session() as session:
            rows = await self._rows(session)
        keys = []
        for row in rows:
            if row.not_after is None:
                keys.append(self._parsed(row).public_jwk)
            elif row.not_after > now:
                keys.append({**self._parsed(row).public_jwk, "exp": int(row.not_after)})
        return {"keys": keys}

    async def _refresh(self) -> None:
        async with self.db.read_session() as session:
            rows = await self._rows(session)
        verifying = {}
        for row in rows:
            known = self._verifying.get(row.kid)
            public = known[0] if known is not None else self._parsed(row).private_key.public_key()
            verifying[row.kid] = (public, row.not_after)
        self._verifying = verifying
        self._read_at = time.monotonic()

    async def get(self, kid: str | None) -> Any:
        since = time.monotonic() - self._read_at
        if since > self.refresh_s or (kid not in self._verifying and since > 1.0):
            await self._refresh()
        found = self._verifying.get(kid)  # type: ignore[arg-type]
        if found is None or (found[1] is not None and found[1] <= clock.system_seconds()):
            return None
        return found[0]


async def add_key(session: AsyncSession, key: SigningKey, *, retire_after_s: float) -> list[str]:
    """Make `key` the signing key: the keys signing until now stop signing and verify for
    `retire_after_s` more. Returns their kids."""
    k = orm.signing_keys
    now = clock.system_seconds()
    retired = [row.kid for row in await session.execute(select(k.c.kid).where(k.c.not_after.is_(None)))]
    if retired:
        await session.execute(update(k).where(k.c.kid.in_(retired)).values(not_after=now + retire_after_s))
    # Strictly after every existing key, whatever the clocks: the newest key is the one that signs.
    newest = (await session.execute(select(k.c.created_at).order_by(k.c.created_at.desc()))).first()
    created = max(now, newest.created_at + 0.001) if newest is not None else now
    await session.execute(
        k.insert().values(kid=key.kid, private_pem=key.pem(), created_at=created, not_after=None)
    )
    return retired


async def rotate(db: Database, *, retire_after_s: float) -> tuple[str, list[str]]:
    """`kkmp keys rotate`: a new key signs from now on; returns its kid and the kids it retires."""
    key = SigningKey.generate()
    async with db.transaction() as session:
        if not on_sqlite(session):
            await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": KEYS_LOCK})
        retired = await add_key(session, key, retire_after_s=retire_after_s)
    return key.kid, retired


async def prune(db: Database) -> list[str]:
    """`kkmp keys prune`: delete the keys that verify nothing any more; returns their kids."""
    k = orm.signing_keys
    async with db.transaction() as session:
        gone = k.c.not_after.is_not(None) & (k.c.not_after <= clock.system_seconds())
        kids = [row.kid for row in await session.execute(select(k.c.kid).where(gone))]
        if kids:
            await session.execute(k.delete().where(k.c.kid.in_(kids)))
    return kids


async def stored_keys(db: Database) -> list[StoredKey]:
    k = orm.signing_keys
    async with db.read_session() as session:
        rows = await session.execute(
            select(k.c.kid, k.c.created_at, k.c.not_after).order_by(k.c.created_at.desc())
        )
        return [StoredKey(row.kid, row.created_at, row.not_after) for row in rows]


def starting_key(*, pem: str | None, path: Path | None, demo: bool, data_dir: Path) -> SigningKey:
    """The key a registry starts with: `SIGNING_KEY` (PEM), else `SIGNING_KEY_FILE`, else in demo mode
    the key kept in the data directory (generated on first start). Outside demo mode a missing key
    is refused, like a default secret."""
    if pem:
        return SigningKey.from_pem(pem.encode())
    if path is not None and (path.exists() or not demo):
        if not path.exists():
            raise ValueError(f"SIGNING_KEY_FILE {path} does not exist")
        return SigningKey.from_pem(path.read_bytes())
    if not demo:
        raise ValueError(
            "the token signing key must be given outside demo mode: set SIGNING_KEY (a PEM RSA private "
            "key) or SIGNING_KEY_FILE (its path), or run with KKMP_DEMO=1 for a demo"
        )
    return SigningKey.load_or_create(path or data_dir / "registry-signing-key.pem")
