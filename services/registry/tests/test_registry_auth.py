"""Users, login and tokens over HTTP, on SQLite and PostgreSQL with the real broker: the bootstrap admin,
user creation (admin only; a coop_manager bound to a cooperative), the login throttle per username and
per address, every kind of bad token, client credentials, and the JWKS that verifies the tokens."""

from __future__ import annotations

import base64
import json
import os
import stat
import time
import uuid
from typing import Any

import jwt
import pytest
from jwt import PyJWK
from kkmp_testkit.asserts import assert_error
from kkmp_testkit.harness import running_app
from kkmp_testkit.tokens import TokenFactory
from registry.adapters.keys import SigningKey
from registry.bootstrap import create_app
from registry_testkit import ADMIN_PASSWORD, SERVICE_CLIENT, RegistryTestSettings

pytestmark = pytest.mark.integration


def unverified(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


async def create_user(registry: Any, **body: Any) -> dict[str, Any]:
    body = {"username": f"user-{uuid.uuid4().hex[:8]}", "password": "rahasia-123", **body}
    response = await registry.client.post("/users", json=body, headers=registry.admin)
    assert response.status_code == 201, response.text
    return {**response.json(), "password": body["password"]}


# --- the bootstrap admin and users --------------------------------------------------------------


async def test_the_bootstrap_admin_logs_in_and_was_announced(registry: Any) -> None:
    response = await registry.login("admin", ADMIN_PASSWORD)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 3600
    claims = unverified(body["access_token"])
    assert claims["role"] == "admin" and claims["iss"] == "kkmp-registry" and claims["aud"] == "kkmp"
    assert claims["exp"] - claims["iat"] == 3600
    me = (
        await registry.client.get("/users/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    ).json()
    assert me["username"] == "admin" and me["id"] == claims["sub"] and "password_hash" not in me
    [event] = await registry.probe.wait_for("user.created.v1", lambda e: e.data["username"] == "admin")
    assert event.data["role"] == "admin" and event.data["user_id"] == me["id"]
    assert event.specversion == "1.0" and event.source == "/registry"
    # Usernames are case-insensitive.
    assert (await registry.login("ADMIN", ADMIN_PASSWORD)).status_code == 200


async def test_admin_creates_users_and_a_coop_manager_is_bound_to_its_cooperative(registry: Any) -> None:
    coop = await registry.create_cooperative("35.78.11")
    other = await registry.create_cooperative("35.78.11")
    manager = await create_user(registry, role="coop_manager", cooperative_id=coop["id"], full_name="Siti")
    assert manager["cooperative_id"] == coop["id"] and manager["role"] == "coop_manager"
    assert (
        "password"
        not in (await registry.client.get(f"/users/{manager['id']}", headers=registry.admin)).json()
    )
    [event] = await registry.probe.wait_for("user.created.v1", lambda e: e.data["user_id"] == manager["id"])
    assert event.subject == coop["id"] and event.data["cooperative_id"] == coop["id"]
    assert (event.data["kelurahan_code"], event.data["kecamatan_code"]) == (
        coop["kelurahan_code"],
        coop["kecamatan_code"],
    )
    assert "password" not in json.dumps(event.data) and "rahasia" not in json.dumps(event.data)

    token = await registry.bearer(manager["username"], manager["password"])
    claims = unverified(token["Authorization"].split()[1])
    assert claims["role"] == "coop_manager" and claims["cooperative_id"] == coop["id"]
    assert (await registry.client.get(f"/cooperatives/{coop['id']}", headers=token)).status_code == 200
    assert_error(await registry.client.get(f"/cooperatives/{other['id']}", headers=token), 404)
    assert_error(
        await registry.client.patch(f"/cooperatives/{other['id']}", json={"phone": "1"}, headers=token), 403
    )
    me = (await registry.client.get("/users/me", headers=token)).json()
    assert me["id"] == manager["id"] and me["cooperative_id"] == coop["id"]

    officer = await create_user(
        registry, role="officer", kecamatan_codes=["35.78.11", "35.78.12"], supervisor=True
    )
    officer_claims = unverified(
        (await registry.login(officer["username"], officer["password"])).json()["access_token"]
    )
    assert (
        officer_claims["kecamatan_codes"] == ["35.78.11", "35.78.12"] and officer_claims["supervisor"] is True
    )
    supplier = await create_user(registry, role="supplier", supplier_id="supplier-42")
    [supplier_event] = await registry.probe.wait_for(
        "user.created.v1", lambda e: e.data["user_id"] == supplier["id"]
    )
    assert supplier_event.data["supplier_id"] == "supplier-42"

    listed = (
        await registry.client.get("/users", params={"role": "coop_manager"}, headers=registry.admin)
    ).json()
    assert manager["id"] in [u["id"] for u in listed] and all(u["role"] == "coop_manager" for u in listed)
    by_coop = (
        await registry.client.get("/users", params={"cooperative_id": coop["id"]}, headers=registry.admin)
    ).json()
    assert [u["id"] for u in by_coop] == [manager["id"]]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"role": "coop_manager"}, 422, "cooperative_id"),
        ({"role": "coop_manager", "cooperative_id": str(uuid.uuid4())}, 422, "cooperative_id"),
        ({"role": "officer", "cooperative_id": "x"}, 422, "cooperative_id"),
        ({"role": "supplier"}, 422, "supplier_id"),
        ({"role": "admin", "supplier_id": "s1"}, 422, "supplier_id"),
        ({"role": "admin", "kecamatan_codes": ["35.78.01"]}, 422, "kecamatan_codes"),
        ({"role": "officer", "kecamatan_codes": ["35.78.99"]}, 422, "kecamatan_codes.0"),
        ({"role": "officer", "kecamatan_codes": ["Rungkut"]}, 422, "kecamatan_codes.0"),
        ({"role": "admin", "supervisor": True}, 422, "supervisor"),
        ({"role": "superuser"}, 422, "role"),
        ({"role": "admin", "password": "short"}, 422, "password"),
        ({"role": "admin", "username": "a b"}, 422, "username"),
        ({"role": "admin", "id": "00000000-0000-0000-0000-000000000000"}, 422, "id"),
        ({"role": "admin", "active": False}, 422, "active"),
        ({"role": "admin", "password_hash": "$argon2id$..."}, 422, "password_hash"),
    ],
)
async def test_user_creation_refuses_inconsistent_or_privileged_fields(
    registry: Any, body: dict[str, Any], status: int, field: str
) -> None:
    payload = {"username": f"bad-{uuid.uuid4().hex[:8]}", "password": "rahasia-123", **body}
    error = assert_error(await registry.client.post("/users", json=payload, headers=registry.admin), status)
    assert field in [d["field"] for d in error["details"]]


async def test_only_an_admin_manages_users_and_usernames_are_unique(registry: Any) -> None:
    body = {"username": f"unik-{uuid.uuid4().hex[:6]}", "password": "rahasia-123", "role": "admin"}
    for headers in (
        registry.officer(),
        registry.manager(str(uuid.uuid4())),
        registry.headers("service"),
        registry.headers("supplier", supplier_id="s"),
    ):
        assert_error(await registry.client.post("/users", json=body, headers=headers), 403)
        assert_error(await registry.client.get("/users", headers=headers), 403)
        assert_error(await registry.client.get(f"/users/{uuid.uuid4()}", headers=headers), 403)
    assert_error(await registry.client.post("/users", json=body), 401)
    assert (await registry.client.post("/users", json=body, headers=registry.admin)).status_code == 201
    upper = {**body, "username": body["username"].upper()}
    assert_error(
        await registry.client.post("/users", json=upper, headers=registry.admin), 409, "username_taken"
    )
    assert_error(await registry.client.get(f"/users/{uuid.uuid4()}", headers=registry.admin), 404)
    assert_error(await registry.client.get("/users/me", headers=registry.headers("service")), 404)


async def test_a_user_changes_its_own_password_and_cannot_change_its_role(registry: Any) -> None:
    user = await create_user(registry, role="officer")
    token = await registry.bearer(user["username"], user["password"])
    assert_error(
        await registry.client.post(
            "/users/me/password",
            json={"current_password": "salah-sekali", "new_password": "baru-12345"},
            headers=token,
        ),
        403,
        "wrong_password",
    )
    assert_error(
        await registry.client.post(
            "/users/me/password",
            json={"current_password": user["password"], "new_password": "baru-12345", "role": "admin"},
            headers=token,
        ),
        422,
    )
    changed = await registry.client.post(
        "/users/me/password",
        json={"current_password": user["password"], "new_password": "baru-12345"},
        headers=token,
    )
    assert changed.status_code == 204
    assert_error(
        await registry.login(user["username"], user["password"], registry.client_from("10.9.9.9")), 401
    )
    assert (await registry.login(user["username"], "baru-12345")).status_code == 200
    # There is no route that changes a role: not on oneself, not on someone else.
    for method, path in (
        ("PATCH", "/users/me"),
        ("PATCH", f"/users/{user['id']}"),
        ("PUT", f"/users/{user['id']}"),
    ):
        response = await registry.client.request(method, path, json={"role": "admin"}, headers=token)
        assert response.status_code in (403, 404, 405) and "error" in response.json()


# --- login throttle -----------------------------------------------------------------------------


async def test_repeated_failures_for_a_username_are_throttled_wherever_they_come_from(registry: Any) -> None:
    user = await create_user(registry, role="officer")
    attacker = registry.client_from("10.0.0.1")
    for _ in range(3):  # login_max_failures=3 in these tests
        assert_error(
            await registry.login(user["username"], "salah-sandi", attacker), 401, "invalid_credentials"
        )
    locked = await registry.login(user["username"], user["password"], attacker)
    assert_error(locked, 429, "rate_limited")
    assert int(locked.headers["Retry-After"]) > 0
    # The lock is on the username: the right password from elsewhere waits too.
    assert_error(
        await registry.login(user["username"].upper(), user["password"], registry.client_from("10.0.0.9")),
        429,
    )
    # Other users from the attacker's address are not locked out by it.
    other = await create_user(registry, role="officer")
    assert (await registry.login(other["username"], other["password"], attacker)).status_code == 200


async def test_repeated_failures_from_one_address_are_throttled_across_usernames(registry: Any) -> None:
    user = await create_user(registry, role="officer")
    sprayer = registry.client_from("10.0.0.2")
    for i in range(5):  # login_max_failures_per_ip=5 in these tests
        assert_error(await registry.login(f"guess-{i}", "password123", sprayer), 401)
    assert_error(await registry.login(user["username"], user["password"], sprayer), 429, "rate_limited")
    assert (
        await registry.login(user["username"], user["password"], registry.client_from("10.0.0.3"))
    ).status_code == 200


async def test_bad_login_input_is_a_4xx(registry: Any) -> None:
    client = registry.client_from("10.0.0.4")
    assert_error(await client.post("/auth/token", data={"username": "admin"}), 422)
    assert_error(
        await client.post("/auth/token", data={"grant_type": "implicit", "username": "a", "password": "b"}),
        422,
    )
    assert_error(await client.post("/auth/token", data={"username": "adm\x00in", "password": "x"}), 422)
    assert_error(await client.post("/auth/token", data={"username": "a" * 101, "password": "x"}), 422)
    assert_error(
        await client.post("/auth/token", json={"username": "admin", "password": ADMIN_PASSWORD}), 422
    )
    assert_error(
        await client.post(
            "/auth/token", content=b"\xff\xfe", headers={"content-type": "application/x-www-form-urlencoded"}
        ),
        422,
    )


# --- tokens -------------------------------------------------------------------------------------


def _forge(claims: dict[str, Any], header: dict[str, Any]) -> str:
    def b64(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{b64(header)}.{b64(claims)}."


async def test_every_kind_of_bad_token_is_401(registry: Any) -> None:
    coop = await registry.create_cooperative()
    path = f"/cooperatives/{coop['id']}"
    kid = registry.app.state.signing_key.kid
    now = int(time.time())
    good_claims = {
        "sub": str(uuid.uuid4()),
        "role": "admin",
        "iss": "kkmp-registry",
        "aud": "kkmp",
        "iat": now,
        "exp": now + 600,
    }
    stranger = TokenFactory()  # a key the registry has never seen
    impostor = TokenFactory(kid=kid)  # claims the registry's kid, signed by another key
    cases = {
        "missing": None,
        "empty": "Bearer ",
        "basic scheme": "Basic YWRtaW46YWRtaW4=",
        "garbage": "Bearer not.a.jwt",
        "alg none": "Bearer " + _forge(good_claims, {"alg": "none", "typ": "JWT", "kid": kid}),
        "alg HS256 with the public key": "Bearer "
        + jwt.encode(
            good_claims, "a-shared-secret-of-32-bytes-or-more!", algorithm="HS256", headers={"kid": kid}
        ),
        "unknown key": "Bearer " + stranger.mint("admin"),
        "wrong key, known kid": "Bearer " + impostor.mint("admin"),
        "expired": "Bearer " + registry.tokens.mint("admin", expires_in=-60),
        "wrong audience": "Bearer "
        + TokenFactory.mint(_same_key(registry.tokens, audience="elsewhere"), "admin"),
        "wrong issuer": "Bearer " + TokenFactory.mint(_same_key(registry.tokens, issuer="evil"), "admin"),
        "unknown role": "Bearer " + registry.tokens.mint("root"),
        "tampered": "Bearer " + _tamper(registry.tokens.mint("coop_manager", cooperative_id=coop["id"])),
    }
    for name, value in cases.items():
        headers = {"Authorization": value} if value is not None else {}
        for method in ("GET", "PATCH"):
            response = await registry.client.request(method, path, json={}, headers=headers)
            error = assert_error(response, 401, "unauthorized")
            assert response.headers.get("WWW-Authenticate") == "Bearer", name
            assert error["message"], name
    # The control: a proper token of the same factory is accepted.
    assert (await registry.client.get(path, headers=registry.headers("admin"))).status_code == 200


def _same_key(factory: TokenFactory, **overrides: str) -> TokenFactory:
    clone = TokenFactory.__new__(TokenFactory)
    clone.private_key, clone.kid = factory.private_key, factory.kid
    clone.issuer = overrides.get("issuer", factory.issuer)
    clone.audience = overrides.get("audience", factory.audience)
    return clone


def _tamper(token: str) -> str:
    """Turn a manager's token into an admin's without re-signing it."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["role"] = "admin"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"{header}.{forged}.{signature}"


async def test_client_credentials_give_services_a_token(registry: Any) -> None:
    client_id, secret = SERVICE_CLIENT
    response = await registry.client.post(
        "/auth/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )
    assert response.status_code == 200, response.text
    claims = unverified(response.json()["access_token"])
    assert claims["role"] == "service" and claims["sub"] == f"service:{client_id}"
    token = {"Authorization": f"Bearer {response.json()['access_token']}"}
    assert (await registry.client.get("/cooperatives", headers=token)).status_code == 200
    assert_error(await registry.client.get("/users/me", headers=token), 404)
    assert_error(await registry.client.get("/users", headers=token), 403)
    for cid, csecret in ((client_id, "wrong"), ("nobody", secret), (client_id, "")):
        bad = await registry.client.post(
            "/auth/token",
            data={"grant_type": "client_credentials", "client_id": cid, "client_secret": csecret},
        )
        assert_error(bad, 401, "invalid_client")


async def test_the_jwks_verifies_the_registrys_tokens(registry: Any) -> None:
    jwks = (await registry.client.get("/.well-known/jwks.json")).json()
    [key] = jwks["keys"]
    assert key["kty"] == "RSA" and key["alg"] == "RS256" and key["use"] == "sig" and "d" not in key
    token = (await registry.login("admin", ADMIN_PASSWORD)).json()["access_token"]
    assert jwt.get_unverified_header(token)["kid"] == key["kid"]
    claims = jwt.decode(token, PyJWK(key).key, algorithms=["RS256"], audience="kkmp", issuer="kkmp-registry")
    assert claims["role"] == "admin"
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(_tamper(token), PyJWK(key).key, algorithms=["RS256"], audience="kkmp")
    # Another service's verifier (the shared library's, fed this JWKS) accepts it too.
    from kkmp_shared.auth import StaticKeySource, TokenVerifier

    principal = await TokenVerifier(StaticKeySource(jwks), issuer="kkmp-registry", audience="kkmp").verify(
        token
    )
    assert principal.role == "admin" and principal.username == "admin"


async def test_the_signing_key_is_kept_on_disk_and_survives_a_restart(registry: Any) -> None:
    settings: RegistryTestSettings = registry.app.state.settings
    path = settings.key_path
    assert path.exists() and path.parent == registry.data_dir
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600  # the private key is readable by its owner only
    fresh = registry.data_dir / f"new-{uuid.uuid4().hex}.pem"
    assert (
        SigningKey.load_or_create(fresh).kid != registry.app.state.signing_key.kid
    )  # generated on first start
    # A second process on the same data directory and database (a restart, or a replica): same key,
    # migrations and region loading are no-ops, the bootstrap admin is not created twice.
    token = (await registry.login("admin", ADMIN_PASSWORD)).json()["access_token"]
    restarted = create_app(settings.model_copy(update={"broker_enabled": False}))
    async with running_app(restarted) as client:
        assert (await client.get("/.well-known/jwks.json")).json() == registry.app.state.signing_key.jwks()
        assert (await client.get("/regions/summary")).json() == {"kecamatan": 31, "kelurahan": 153}
        me = await client.get("/users/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200 and me.json()["username"] == "admin"
        admins = await client.get(
            "/users", params={"role": "admin"}, headers={"Authorization": f"Bearer {token}"}
        )
        assert [u["username"] for u in admins.json()].count("admin") == 1
