"""The registry's signing key, kept on disk (generated on first start), and the tokens it signs."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from jwt.algorithms import RSAAlgorithm
from kkmp_shared import clock


class SigningKey:
    def __init__(self, private_key: RSAPrivateKey) -> None:
        self.private_key = private_key
        public_jwk = json.loads(RSAAlgorithm.to_jwk(private_key.public_key()))
        # RFC 7638 thumbprint as the key id: stable across restarts, new when the key is rotated.
        canonical = json.dumps({k: public_jwk[k] for k in ("e", "kty", "n")}, separators=(",", ":"))
        self.kid = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).decode().rstrip("=")
        self.public_jwk = {**public_jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}

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
