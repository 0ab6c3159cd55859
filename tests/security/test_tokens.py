"""Tokens at every protected route of every service: missing, `alg: none`, HS256 (with a made-up
secret and with the registry's own public key), signed by another key, an unknown key id, expired,
not yet valid, without expiry or subject, wrong audience, wrong issuer, unknown role, and not a
bearer token at all → 401 with the contract's error body."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import jwt
import pytest
from kkmp_testkit.processes import Platform
from kkmp_testkit.tokens import TokenFactory

pytestmark = pytest.mark.e2e

API_SERVICES = ("registry", "inventory", "sourcing", "reporting", "notifications")
PUBLIC_PREFIXES = (
    "/health/",
    "/metrics",
    "/asyncapi.json",
    "/openapi.json",
    "/docs",
    "/redoc",
    "/regions/",
    "/.well-known/",
    "/auth/token",
    "/public/",
)
FAKE_ID = "00000000-0000-4000-8000-000000000000"


def protected_routes(spec: dict[str, Any]) -> list[tuple[str, str]]:
    routes = []
    for path, methods in spec["paths"].items():
        if path.startswith(PUBLIC_PREFIXES):
            continue
        for method in methods:
            if method in ("get", "post", "put", "patch", "delete"):
                concrete = path
                while "{" in concrete:
                    start, end = concrete.index("{"), concrete.index("}")
                    name = concrete[start + 1 : end]
                    value = "35.78.01.1001" if "code" in name else FAKE_ID
                    concrete = concrete[:start] + value + concrete[end + 1 :]
                routes.append((method.upper(), concrete))
    return routes


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def bad_tokens(platform: Platform) -> dict[str, str | None]:
    """Each token is wrong in exactly one way; the real one proves the checks are not just 'reject all'."""
    real = platform.admin_token()
    header = jwt.get_unverified_header(real)
    claims = jwt.decode(real, options={"verify_signature": False})
    foreign = TokenFactory(kid=header["kid"])  # same kid, another key: the signature must fail
    now = int(time.time())
    forged = {**claims, "exp": now + 3600}
    return {
        "missing": None,
        "garbage": "not-a-jwt",
        "alg_none": f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': header['kid']})}.{_b64(forged)}.",
        "hs256_with_public_key_confusion": jwt.encode(
            forged, "a-made-up-secret-of-at-least-32-bytes", algorithm="HS256", headers={"kid": header["kid"]}
        ),
        "wrong_key": foreign.mint("admin", sub=claims["sub"]),
        "hs256_signed_with_the_public_key": _hs256_with_public_key(platform, forged, header["kid"]),
        "unknown_kid": _resign(platform, claims, "not-a-registry-key"),
        "expired": _resign(platform, claims, header["kid"], exp=now - 60),
        "no_expiry": _resign(platform, {k: v for k, v in claims.items() if k != "exp"}, header["kid"]),
        "not_yet_valid": _resign(platform, claims, header["kid"], nbf=now + 3600),
        "wrong_audience": _resign(platform, claims, header["kid"], aud="someone-else"),
        "wrong_issuer": _resign(platform, claims, header["kid"], iss="https://evil.example"),
        "unknown_role": _resign(platform, claims, header["kid"], role="superadmin"),
        "no_subject": _resign(platform, {k: v for k, v in claims.items() if k != "sub"}, header["kid"]),
    }


def _hs256_with_public_key(platform: Platform, claims: dict[str, Any], kid: str) -> str:
    """The classic algorithm confusion: HMAC-signed with the registry's public key as the secret (a
    verifier that let the token pick its algorithm would accept it)."""
    import hashlib
    import hmac

    from cryptography.hazmat.primitives import serialization
    from jwt.algorithms import RSAAlgorithm

    jwks = httpx.get(f"{platform.url('registry')}/.well-known/jwks.json", timeout=30).json()
    public = RSAAlgorithm.from_jwk(json.dumps(jwks["keys"][0]))
    pem = public.public_bytes(  # type: ignore[union-attr]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = f"{_b64({'alg': 'HS256', 'typ': 'JWT', 'kid': kid})}.{_b64(claims)}"
    signature = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).decode().rstrip('=')}"


def _resign(platform: Platform, claims: dict[str, Any], kid: str, **changes: Any) -> str:
    """Sign with the registry's own key (read from its data directory): only the claim is wrong."""
    from cryptography.hazmat.primitives import serialization

    key_path = platform.work_dir / "registry" / "registry-signing-key.pem"
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    header = {"kid": kid}
    return jwt.encode({**claims, **changes}, key, algorithm="RS256", headers=header)  # type: ignore[arg-type]


@pytest.mark.parametrize("service", API_SERVICES)
def test_every_protected_route_refuses_bad_tokens(platform: Platform, service: str) -> None:
    base = platform.url(service)
    spec = httpx.get(f"{base}/openapi.json").json()
    routes = protected_routes(spec)
    assert routes, f"{service} has no protected routes?"
    tokens = bad_tokens(platform)
    # Not a bearer token at all: a password in Basic, the real token under another scheme.
    real = platform.admin_token()
    schemes = {
        "basic_password": "Basic " + base64.b64encode(f"admin:{platform.admin_password}".encode()).decode(),
        "token_without_scheme": real,
        "token_under_another_scheme": f"Token {real}",
        "bare_bearer": "Bearer",
    }
    failures = []
    with httpx.Client(timeout=30) as client:
        for method, path in routes:
            for name, token in {**tokens, **{k: ("raw", v) for k, v in schemes.items()}}.items():
                if isinstance(token, tuple):
                    headers = {"Authorization": token[1]}
                else:
                    headers = {"Authorization": f"Bearer {token}"} if token else {}
                response = client.request(method, f"{base}{path}", headers=headers, json={})
                body = (
                    response.json()
                    if response.headers.get("content-type", "").startswith("application/json")
                    else {}
                )
                if response.status_code != 401 or "error" not in body:
                    failures.append(
                        f"{method} {path} [{name}] → {response.status_code} {response.text[:120]}"
                    )
    assert not failures, "\n".join(failures)


def test_the_real_token_is_accepted(platform: Platform) -> None:
    """The same checks let a good token through (so the test above cannot pass by refusing everything)."""
    headers = {"Authorization": f"Bearer {platform.admin_token()}"}
    assert httpx.get(f"{platform.url('registry')}/cooperatives", headers=headers).status_code == 200
    assert httpx.get(f"{platform.url('inventory')}/commodities", headers=headers).status_code == 200
    assert httpx.get(f"{platform.url('reporting')}/dashboard/summary", headers=headers).status_code == 200
