"""Token verification remembers verified tokens (the cost of RSA and PyJWT per request), and stays exactly
as strict: expiry still refused, a refused token never remembered, a rotated-out key no longer trusted.
The JWKS is fetched over HTTP from a local server. No broker or database."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import jwt
import pytest
from kkmp_shared.auth import JwksKeySource, KeySource, StaticKeySource, TokenVerifier
from kkmp_shared.errors import ApiError
from kkmp_testkit.tokens import TokenFactory

pytestmark = pytest.mark.unit


class CountingKeys(KeySource):
    """A key source whose key can be swapped (rotation), counting lookups."""

    def __init__(self, source: StaticKeySource) -> None:
        self.source = source
        self.lookups = 0

    async def get(self, kid: str | None) -> Any:
        self.lookups += 1
        return await self.source.get(kid)


def _verifier(keys: KeySource, **kwargs: Any) -> TokenVerifier:
    return TokenVerifier(keys, issuer="kkmp-registry", audience="kkmp", **kwargs)


async def test_a_verified_token_is_remembered_until_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    factory = TokenFactory()
    verifier = _verifier(factory.key_source())
    token = factory.mint("officer", kecamatan_codes=["35.78.01"], expires_in=2)
    decode_calls = 0
    real_decode = jwt.decode

    def counting_decode(*args: Any, **kwargs: Any) -> Any:
        nonlocal decode_calls
        decode_calls += 1
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting_decode)
    first = await verifier.verify(token)
    again = await verifier.verify(token)
    assert again is first and first.kecamatan_codes == ("35.78.01",)
    assert decode_calls == 1

    # Once it has expired, the remembered token is refused with the error an uncached one gets.
    exp = int(first.claims["exp"])
    while time.time() <= exp + 0.05:
        await asyncio.sleep(0.1)
    with pytest.raises(ApiError) as refused:
        await verifier.verify(token)
    assert refused.value.status == 401 and "expired" in refused.value.message
    assert token not in verifier._verified


async def test_a_refused_token_is_never_remembered() -> None:
    factory, impostor = TokenFactory(), TokenFactory()
    verifier = _verifier(factory.key_source())
    # Signed by another key under the trusted kid: the signature check fails, every time.
    forged = jwt.encode(
        {"sub": "x", "role": "admin", "iss": "kkmp-registry", "aud": "kkmp", "iat": 1, "exp": 2**40},
        impostor.private_key,
        algorithm="RS256",
        headers={"kid": factory.kid},
    )
    for _ in range(2):
        with pytest.raises(ApiError) as refused:
            await verifier.verify(forged)
        assert refused.value.status == 401
    assert verifier._verified == {}
    expired = factory.mint("admin", expires_in=-10)
    with pytest.raises(ApiError):
        await verifier.verify(expired)
    assert verifier._verified == {}


async def test_a_rotated_key_is_no_longer_trusted_for_remembered_tokens() -> None:
    old, new = TokenFactory(kid="k1"), TokenFactory(kid="k1")
    keys = CountingKeys(old.key_source())
    verifier = _verifier(keys)
    token = old.mint("admin")
    await verifier.verify(token)
    await verifier.verify(token)
    assert keys.lookups == 2  # the key is looked up on every request, remembered or not
    keys.source = new.key_source()  # the registry rotated its key under the same kid
    with pytest.raises(ApiError) as refused:
        await verifier.verify(token)
    assert refused.value.status == 401
    await verifier.verify(new.mint("admin"))


async def test_the_cache_is_bounded_least_recently_used_first() -> None:
    factory = TokenFactory()
    verifier = _verifier(factory.key_source(), cache_size=2)
    a, b, c = (factory.mint("admin", sub=s) for s in "abc")
    await verifier.verify(a)
    await verifier.verify(b)
    await verifier.verify(a)  # a is now the most recently used
    await verifier.verify(c)
    assert list(verifier._verified) == [a, c]


@pytest.fixture
def jwks_server() -> Iterator[tuple[str, dict[str, Any]]]:
    state: dict[str, Any] = {"jwks": {"keys": []}, "status": 200, "hits": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state["hits"] += 1
            body = json.dumps(state["jwks"]).encode()
            self.send_response(state["status"])
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/.well-known/jwks.json", state
    finally:
        server.shutdown()
        server.server_close()


async def test_jwks_keys_are_fetched_over_http(jwks_server: tuple[str, dict[str, Any]]) -> None:
    url, state = jwks_server
    factory = TokenFactory()
    state["jwks"] = factory.jwks()
    verifier = _verifier(JwksKeySource(url))
    principal = await verifier.verify(factory.mint("supplier", supplier_id="s1"))
    assert principal.supplier_id == "s1" and state["hits"] == 1
    # An unknown kid is refused (the JWKS was fetched moments ago: no refetch storm).
    with pytest.raises(ApiError) as refused:
        await verifier.verify(TokenFactory().mint("admin"))
    assert refused.value.status == 401 and state["hits"] == 1


async def test_jwks_unreachable_is_a_503(jwks_server: tuple[str, dict[str, Any]]) -> None:
    url, state = jwks_server
    state["status"] = 500
    with pytest.raises(ApiError) as unavailable:
        await _verifier(JwksKeySource(url)).verify(TokenFactory().mint("admin"))
    assert unavailable.value.status == 503
