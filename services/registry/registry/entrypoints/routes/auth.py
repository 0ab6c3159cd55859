"""Tokens: the OAuth2 token endpoint and the public keys that verify what it signs."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Form, Request
from kkmp_shared.errors import unprocessable

from registry.entrypoints import schemas
from registry.entrypoints.params import ERRORS
from registry.entrypoints.schemas import storable_text
from registry.service_layer.commands import ClientCredentialsGrant, PasswordGrant
from registry.service_layer.login import IssuedToken, Login

router = APIRouter(tags=["auth"], responses=ERRORS)


def _login(request: Request) -> Login:
    login: Login = request.app.state.login
    return login


LoginDep = Annotated[Login, Depends(_login)]


@router.get("/.well-known/jwks.json", summary="Public keys that verify the registry's tokens")
async def jwks(request: Request) -> dict[str, Any]:
    jwks: dict[str, Any] = await request.app.state.keys.jwks()
    return jwks


def _token_out(token: IssuedToken) -> dict[str, Any]:
    return {"access_token": token.access_token, "token_type": "bearer", "expires_in": token.expires_in}


@router.post(
    "/auth/token",
    response_model=schemas.TokenOut,
    summary="OAuth2 token: password grant for people, client_credentials for services",
    responses=schemas.error_responses(401, 429),
)
async def token(
    request: Request,
    login: LoginDep,
    grant_type: Annotated[Literal["password", "client_credentials"], Form()] = "password",
    username: Annotated[str | None, Form(max_length=100)] = None,
    password: Annotated[str | None, Form(max_length=200)] = None,
    client_id: Annotated[str | None, Form(max_length=100)] = None,
    client_secret: Annotated[str | None, Form(max_length=200)] = None,
) -> Any:
    # The client address is the peer's, or the one its X-Forwarded-For reports when the peer is a proxy
    # this registry trusts (uvicorn's FORWARDED_ALLOW_IPS: the portal in compose), so people behind the
    # portal are throttled apart and nobody else can pick the address they are counted under.
    client_ip = request.client.host if request.client else "unknown"
    if grant_type == "client_credentials":
        if client_id is not None and not storable_text(client_id):
            raise unprocessable("client_id", "The client id contains control or invalid characters.")
        grant = ClientCredentialsGrant(client_id=client_id, client_secret=client_secret, client_ip=client_ip)
        return _token_out(await login.client_credentials_grant(grant))
    if not username or not password:
        raise unprocessable("username", "username and password are required for the password grant.")
    if not storable_text(username):
        raise unprocessable("username", "The username contains control or invalid characters.")
    command = PasswordGrant(username=username, password=password, client_ip=client_ip)
    return _token_out(await login.password_grant(command))
