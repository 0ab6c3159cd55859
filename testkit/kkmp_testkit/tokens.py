"""Mint tokens for tests, signed by a key the test owns, shaped exactly like the registry's."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from kkmp_shared import clock
from kkmp_shared.auth import StaticKeySource


class TokenFactory:
    def __init__(self, issuer: str = "kkmp-registry", audience: str = "kkmp", kid: str | None = None) -> None:
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = kid or uuid.uuid4().hex[:16]
        self.issuer = issuer
        self.audience = audience

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(RSAAlgorithm.to_jwk(self.private_key.public_key()))
        jwk.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        return {"keys": [jwk]}

    def key_source(self) -> StaticKeySource:
        return StaticKeySource(self.jwks())

    def write_jwks(self, path: Path) -> Path:
        path.write_text(json.dumps(self.jwks()))
        return path

    def private_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def mint(
        self,
        role: str,
        *,
        sub: str | None = None,
        cooperative_id: str | None = None,
        supplier_id: str | None = None,
        kecamatan_codes: list[str] | None = None,
        expires_in: int = 3600,
        **extra: Any,
    ) -> str:
        now = int(clock.system_seconds())
        claims: dict[str, Any] = {
            "sub": sub or str(uuid.uuid4()),
            "role": role,
            "iss": self.issuer,
            "aud": self.audience,
            "iat": now,
            "exp": now + expires_in,
            "kecamatan_codes": kecamatan_codes or [],
        }
        if cooperative_id is not None:
            claims["cooperative_id"] = cooperative_id
        if supplier_id is not None:
            claims["supplier_id"] = supplier_id
        claims.update(extra)
        return jwt.encode(claims, self.private_key, algorithm="RS256", headers={"kid": self.kid})

    def headers(self, role: str, **kwargs: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.mint(role, **kwargs)}"}
