"""Unit tests of the registry's settings (no default secrets outside demo mode) and its token signing."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt import PyJWK
from kkmp_shared.auth import StaticKeySource
from pydantic import ValidationError
from registry.adapters.keys import SigningKey, starting_key
from registry.bootstrap import parse_clients
from registry.service_layer.login import claims_for
from registry.settings import DEMO_ADMIN_PASSWORD, RegistrySettings

pytestmark = pytest.mark.unit

# Outside demo mode the broker's default guest password is refused too; these tests give a real one.
BROKER = "amqp://kkmp:a-broker-secret@localhost:5672/"


def test_outside_demo_mode_the_admin_password_must_be_set() -> None:
    with pytest.raises(ValidationError, match="KKMP_ADMIN_PASSWORD"):
        RegistrySettings(demo=False, admin_password=None)
    with pytest.raises(ValidationError, match="KKMP_ADMIN_PASSWORD"):
        RegistrySettings(demo=False, admin_password=DEMO_ADMIN_PASSWORD)
    settings = RegistrySettings(demo=False, admin_password="a-real-secret-1", amqp_url=BROKER)
    assert settings.effective_admin_password() == "a-real-secret-1"


def test_demo_mode_defaults_the_admin_password() -> None:
    assert RegistrySettings(demo=True, admin_password=None).effective_admin_password() == DEMO_ADMIN_PASSWORD


def test_a_short_admin_password_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"admin_password|KKMP_ADMIN_PASSWORD"):
        RegistrySettings(demo=True, admin_password="short")


def test_service_clients_may_not_keep_the_demo_secret_outside_demo_mode() -> None:
    with pytest.raises(ValidationError, match="SERVICE_CLIENTS"):
        RegistrySettings(
            demo=False, admin_password="a-real-secret-1", service_clients="inventory:kkmp-demo-service-secret"
        )
    settings = RegistrySettings(
        demo=False, admin_password="a-real-secret-1", service_clients="inventory:s3cret!", amqp_url=BROKER
    )
    assert parse_clients(settings.service_clients) == {"inventory": "s3cret!"}
    assert parse_clients("a:1, b : 2,broken,") == {"a": "1", "b": "2"}


def test_tokens_are_rs256_with_a_stable_thumbprint_kid_and_verify_against_the_jwks() -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key = SigningKey(private)
    assert SigningKey(private).kid == key.kid  # the same key always has the same kid
    assert SigningKey(rsa.generate_private_key(public_exponent=65537, key_size=2048)).kid != key.kid
    user = {
        "id": "u1",
        "role": "coop_manager",
        "username": "budi",
        "cooperative_id": "c1",
        "kecamatan_codes": [],
    }
    token = key.sign(claims_for(user), issuer="kkmp-registry", audience="kkmp", ttl_s=60)
    assert jwt.get_unverified_header(token) == {"alg": "RS256", "kid": key.kid, "typ": "JWT"}
    [jwk] = key.jwks()["keys"]
    assert "d" not in jwk and jwk["use"] == "sig"
    claims = jwt.decode(token, PyJWK(jwk).key, algorithms=["RS256"], audience="kkmp", issuer="kkmp-registry")
    assert (
        claims["cooperative_id"] == "c1"
        and claims["role"] == "coop_manager"
        and claims["exp"] - claims["iat"] == 60
    )


def test_claims_carry_exactly_the_scope_of_the_role() -> None:
    base = {"id": "u", "username": "x", "cooperative_id": None, "supplier_id": None, "kecamatan_codes": []}
    assert "cooperative_id" not in claims_for({**base, "role": "admin"})
    officer = claims_for({**base, "role": "officer", "kecamatan_codes": ["35.78.01"], "supervisor": True})
    assert officer["kecamatan_codes"] == ["35.78.01"] and officer["supervisor"] is True
    supplier = claims_for({**base, "role": "supplier", "supplier_id": "s9"})
    assert supplier["supplier_id"] == "s9" and "kecamatan_codes" not in supplier


def test_outside_demo_mode_a_registry_without_a_signing_key_refuses_to_start(tmp_path: Path) -> None:
    from registry.bootstrap import create_app

    settings = RegistrySettings(
        demo=False, admin_password="a-real-secret-1", amqp_url=BROKER, data_dir=tmp_path
    )
    with pytest.raises(RuntimeError, match="SIGNING_KEY"):
        create_app(settings)
    assert not (tmp_path / "registry-signing-key.pem").exists()  # nothing generated behind the operator
    with pytest.raises(ValueError, match="does not exist"):
        starting_key(pem=None, path=tmp_path / "missing.pem", demo=False, data_dir=tmp_path)
    key = SigningKey.generate()
    assert starting_key(pem=key.pem(), path=None, demo=False, data_dir=tmp_path).kid == key.kid
    (tmp_path / "given.pem").write_text(key.pem())
    assert starting_key(pem=None, path=tmp_path / "given.pem", demo=False, data_dir=tmp_path).kid == key.kid
    demo = starting_key(pem=None, path=None, demo=True, data_dir=tmp_path)
    assert (tmp_path / "registry-signing-key.pem").exists() and demo.kid != key.kid


async def test_a_key_published_with_an_exp_verifies_nothing_after_it() -> None:
    old, new = SigningKey.generate(), SigningKey.generate()
    now = time.time()
    source = StaticKeySource(
        {
            "keys": [
                new.public_jwk,
                {**old.public_jwk, "exp": int(now) + 60},
                {**old.public_jwk, "kid": "gone", "exp": int(now) - 1},
            ]
        }
    )
    assert await source.get(new.kid) is not None and await source.get(old.kid) is not None
    assert await source.get("gone") is None


async def test_password_hashing_takes_the_settings_parameters_and_verifies_older_hashes() -> None:
    from argon2 import PasswordHasher
    from registry.adapters import passwords

    defaults = RegistrySettings(demo=True)
    older = PasswordHasher().hash("rahasia-lama-1")  # made under the default parameters
    try:
        passwords.configure_password_hashing(time_cost=2, memory_kib=19456, parallelism=1)
        made = await passwords.hash_password("rahasia-baru-1")
        assert made.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
        assert await passwords.verify_password(made, "rahasia-baru-1")
        assert await passwords.verify_password(older, "rahasia-lama-1")
        assert not await passwords.verify_password(older, "rahasia-baru-1")
    finally:
        passwords.configure_password_hashing(
            time_cost=defaults.password_hash_time_cost,
            memory_kib=defaults.password_hash_memory_kib,
            parallelism=defaults.password_hash_parallelism,
        )
    assert (await passwords.hash_password("x-123456")).startswith("$argon2id$v=19$m=65536,t=3,p=4$")
