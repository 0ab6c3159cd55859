"""Signing in with the registry's tokens, and signing out.

The password goes once to the registry (``POST /auth/token``, OAuth2 password form); the token that
comes back is kept only in the signed, http-only session cookie. The browser never sees it in a page.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import Response
from portal.adapters.clients import ServiceUnavailable, UpstreamError
from portal.domain.identity import MalformedToken, User, token_claims
from portal.entrypoints.web import (
    CsrfChecked,
    flash,
    redirect,
    render,
    safe_next,
    sign_in,
    sign_out,
)

log = logging.getLogger("portal.auth")

router = APIRouter()


def home_for(user: User) -> str:
    if user.is_dinkopdag:
        return "/dasbor"
    if user.is_manager and user.cooperative_id:
        return f"/koperasi/{user.cooperative_id}/stok"
    return "/notifikasi"


@router.get("/masuk", include_in_schema=False)
async def login_form(request: Request, next: str = "/") -> Response:
    if request.session.get("user") and request.session.get("token"):
        return redirect(safe_next(next, home_for(User.from_session(request.session["user"]))))
    return await render(request, "login.html", {"next": safe_next(next), "username": ""}, with_badge=False)


@router.post("/masuk", include_in_schema=False)
async def login(request: Request, _csrf: CsrfChecked) -> Response:
    form = await request.form()
    username = str(form.get("username") or "").strip()
    password = str(form.get("password") or "")
    next_url = safe_next(str(form.get("next") or "/"))
    context = {"next": next_url, "username": username}
    if not username or not password:
        context["error"] = "Isi nama pengguna dan kata sandi."
        return await render(request, "login.html", context, status_code=400, with_badge=False)
    registry = request.app.state.upstreams.registry()
    try:
        token = await registry.token(username, password, request.client.host if request.client else None)
        user = User.from_claims(username, token_claims(token.access_token))
    except ServiceUnavailable as exc:
        context["error"] = exc.message
        return await render(request, "login.html", context, status_code=503, with_badge=False)
    except UpstreamError as exc:
        if exc.status in (400, 401, 403):
            context["error"] = "Nama pengguna atau kata sandi salah."
        else:
            context["error"] = exc.message
        status = exc.status if exc.status in (400, 401, 403, 429) else 502
        return await render(request, "login.html", context, status_code=status, with_badge=False)
    except MalformedToken:
        log.error("registry returned a token that is not a JWT")
        context["error"] = "Layanan akun memberi jawaban yang tidak dikenali. Hubungi administrator."
        return await render(request, "login.html", context, status_code=502, with_badge=False)
    if user.role in ("service", ""):
        context["error"] = "Akun ini tidak dapat digunakan untuk masuk ke portal."
        return await render(request, "login.html", context, status_code=403, with_badge=False)
    sign_in(request, user, token.access_token, token.expires_in)
    log.info("signed in", extra={"username": user.username, "role": user.role})
    return redirect(next_url if next_url != "/" else home_for(user))


@router.post("/keluar", include_in_schema=False)
async def logout(request: Request, _csrf: CsrfChecked) -> Response:
    sign_out(request)
    flash(request, "Anda sudah keluar.")
    return redirect("/masuk")
