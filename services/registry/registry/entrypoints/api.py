"""The registry's HTTP routes: thin adapters over the service layer.

Each route states who may call it (a principal dependency) and hands over to a handler that applies
the cooperative and kecamatan scope. Query and path parameters are validated here, so that nothing a
client sends reaches SQL unchecked.
"""

from __future__ import annotations

import asyncio
import hmac
from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, File, Form, Path, Query, Request, Response, UploadFile, status
from kkmp_shared import clock
from kkmp_shared.app import OutboxDep, SessionDep
from kkmp_shared.auth import AdminPrincipal, CurrentPrincipal, StaffPrincipal
from kkmp_shared.errors import ApiError, unprocessable
from kkmp_shared.http import ERRORS, IdPath
from kkmp_shared.pagination import PageDep
from sqlalchemy import func, select

from registry.adapters import orm
from registry.entrypoints import schemas
from registry.entrypoints.schemas import storable_text
from registry.service_layer import handlers, importer

# Every route documents the error format with the statuses it may answer (the contract's list).
regions = APIRouter(tags=["regions"], responses=ERRORS)
auth = APIRouter(tags=["auth"], responses=ERRORS)
cooperatives = APIRouter(tags=["cooperatives"], responses=ERRORS)
people = APIRouter(tags=["users"], responses=ERRORS)
potentials = APIRouter(tags=["potentials"], responses=ERRORS)
trainings = APIRouter(tags=["trainings"], responses=ERRORS)

KECAMATAN_PATTERN = r"^\d{2}\.\d{2}\.\d{2}$"
KecamatanQuery = Annotated[str | None, Query(pattern=KECAMATAN_PATTERN, description="e.g. 35.78.01")]
# Ids are UUIDs; a longer value is bad input, a malformed one of the right size names nothing (404).
KelurahanPath = Annotated[str, Path(max_length=20, description="Kemendagri code, e.g. 35.78.01.1001")]
CooperativeStatus = Literal["formed", "operating", "suspended", "dissolved"]


def _text_query(value: str | None, name: str) -> str | None:
    if value is not None and not storable_text(value):
        raise unprocessable(name, "The text contains control or invalid characters.")
    return value


# --- regions (public reference data: codes, names and points, nothing personal) ------------------


@regions.get("/regions/kecamatan", response_model=list[schemas.KecamatanOut], summary="The kecamatan")
async def list_kecamatan(session: SessionDep) -> Any:
    rows = await session.execute(select(orm.kecamatan).order_by(orm.kecamatan.c.code))
    return [dict(r._mapping) for r in rows]


@regions.get("/regions/kelurahan", response_model=list[schemas.KelurahanOut], summary="The kelurahan")
async def list_kelurahan(session: SessionDep, kecamatan_code: KecamatanQuery = None) -> Any:
    query = select(orm.kelurahan).order_by(orm.kelurahan.c.code)
    if kecamatan_code:
        query = query.where(orm.kelurahan.c.kecamatan_code == kecamatan_code)
    return [dict(r._mapping) for r in await session.execute(query)]


@regions.get("/regions/summary", summary="How many regions are loaded")
async def region_summary(session: SessionDep) -> dict[str, int]:
    kec = (await session.execute(select(func.count()).select_from(orm.kecamatan))).scalar_one()
    kel = (await session.execute(select(func.count()).select_from(orm.kelurahan))).scalar_one()
    return {"kecamatan": kec, "kelurahan": kel}


# --- auth ---------------------------------------------------------------------------------------


@auth.get("/.well-known/jwks.json", summary="Public keys that verify the registry's tokens")
async def jwks(request: Request) -> dict[str, Any]:
    jwks: dict[str, Any] = await request.app.state.keys.jwks()
    return jwks


def _rate_limited(retry_after: int) -> ApiError:
    return ApiError(
        429,
        "rate_limited",
        "Too many failed attempts; try again later.",
        headers={"Retry-After": str(retry_after)},
    )


@auth.post(
    "/auth/token",
    response_model=schemas.TokenOut,
    summary="OAuth2 token: password grant for people, client_credentials for services",
    responses=schemas.error_responses(401, 429),
)
async def token(
    request: Request,
    session: SessionDep,
    grant_type: Annotated[Literal["password", "client_credentials"], Form()] = "password",
    username: Annotated[str | None, Form(max_length=100)] = None,
    password: Annotated[str | None, Form(max_length=200)] = None,
    client_id: Annotated[str | None, Form(max_length=100)] = None,
    client_secret: Annotated[str | None, Form(max_length=200)] = None,
) -> Any:
    settings = request.app.state.settings
    key = request.app.state.keys
    ttl = settings.token_ttl_s
    # The client address is the peer's, or the one its X-Forwarded-For reports when the peer is a proxy
    # this registry trusts (uvicorn's FORWARDED_ALLOW_IPS: the portal in compose), so people behind the
    # portal are throttled apart and nobody else can pick the address they are counted under.
    client_ip = request.client.host if request.client else "unknown"
    ip_key = f"ip:{client_ip}"
    since = clock.now() - timedelta(seconds=settings.login_window_s)
    if grant_type == "client_credentials":
        if client_id is not None and not storable_text(client_id):
            raise unprocessable("client_id", "The client id contains control or invalid characters.")
        # A client secret is a password: guessing it is throttled like a login, per client and address.
        client_key = f"client:{(client_id or '').lower()}"
        if (
            await handlers.recent_failures(session, client_key, since) >= settings.login_max_failures
            or await handlers.recent_failures(session, ip_key, since) >= settings.login_max_failures_per_ip
        ):
            raise _rate_limited(settings.login_window_s)
        clients: dict[str, str] = request.app.state.service_clients
        if not client_id or not client_secret or not _secret_matches(clients.get(client_id), client_secret):
            await handlers.record_failure(session, [client_key, ip_key], since)
            raise ApiError(
                401,
                "invalid_client",
                "Unknown client or wrong secret.",
                headers={"WWW-Authenticate": "Basic"},
            )
        await handlers.clear_failures(session, client_key)
        claims = {"sub": f"service:{client_id}", "role": "service", "username": client_id}
        return {
            "access_token": await key.sign(
                claims, issuer=settings.jwt_issuer, audience=settings.jwt_audience, ttl_s=ttl
            ),
            "token_type": "bearer",
            "expires_in": ttl,
        }
    if not username or not password:
        raise unprocessable("username", "username and password are required for the password grant.")
    if not storable_text(username):
        raise unprocessable("username", "The username contains control or invalid characters.")
    user_key = f"user:{username.lower()}"
    if (
        await handlers.recent_failures(session, user_key, since) >= settings.login_max_failures
        or await handlers.recent_failures(session, ip_key, since) >= settings.login_max_failures_per_ip
    ):
        raise _rate_limited(settings.login_window_s)
    user = await handlers.authenticate(session, username, password)
    if user is None:
        await handlers.record_failure(session, [user_key, ip_key], since)
        raise ApiError(
            401, "invalid_credentials", "Wrong username or password.", headers={"WWW-Authenticate": "Bearer"}
        )
    await handlers.clear_failures(session, user_key)
    claims = handlers.claims_for(user)
    return {
        "access_token": await key.sign(
            claims, issuer=settings.jwt_issuer, audience=settings.jwt_audience, ttl_s=ttl
        ),
        "token_type": "bearer",
        "expires_in": ttl,
    }


def _secret_matches(expected: str | None, given: str) -> bool:
    """Constant-time comparison, so the secret cannot be guessed byte by byte from response times."""
    return expected is not None and hmac.compare_digest(expected.encode(), given.encode())


# --- users --------------------------------------------------------------------------------------


@people.post(
    "/users",
    response_model=schemas.UserOut,
    status_code=status.HTTP_201_CREATED,
    summary="Create a user (admin); a coop_manager is bound to one cooperative",
)
async def create_user(
    data: schemas.UserCreate, session: SessionDep, outbox: OutboxDep, _: AdminPrincipal
) -> Any:
    return await handlers.create_user(session, outbox, data)


@people.get("/users", response_model=list[schemas.UserOut], summary="List users (admin)")
async def list_users(
    session: SessionDep,
    _: AdminPrincipal,
    page: PageDep,
    role: Annotated[schemas.Role | None, Query()] = None,
    cooperative_id: Annotated[str | None, Query(max_length=64)] = None,
) -> Any:
    _text_query(cooperative_id, "cooperative_id")
    return await handlers.list_users(
        session, role=role, cooperative_id=cooperative_id, limit=page.limit, offset=page.offset
    )


@people.get("/users/me", response_model=schemas.UserOut, summary="The caller's own account")
async def me(session: SessionDep, principal: CurrentPrincipal) -> Any:
    if principal.role == "service":
        raise ApiError(404, "not_found", "A service client has no user account.")
    return await handlers.get_user(session, principal.sub)


@people.post(
    "/users/me/password",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=schemas.error_responses(429),
    summary="Change the caller's own password",
)
async def change_password(
    request: Request, data: schemas.PasswordChange, session: SessionDep, principal: CurrentPrincipal
) -> Response:
    if principal.role == "service":
        raise ApiError(404, "not_found", "A service client has no user account.")
    settings = request.app.state.settings
    # The current password is checked like a login: guessing it through this route is throttled too.
    key = f"user:{(principal.username or principal.sub).lower()}"
    since = clock.now() - timedelta(seconds=settings.login_window_s)
    if await handlers.recent_failures(session, key, since) >= settings.login_max_failures:
        raise _rate_limited(settings.login_window_s)
    try:
        await handlers.change_password(session, principal.sub, data)
    except ApiError as exc:
        if exc.code == "wrong_password":
            await session.rollback()
            await handlers.record_failure(session, [key], since)
        raise
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@people.get("/users/{user_id}", response_model=schemas.UserOut, summary="One user (admin)")
async def get_user(user_id: IdPath, session: SessionDep, _: AdminPrincipal) -> Any:
    return await handlers.get_user(session, user_id)


# --- cooperatives -------------------------------------------------------------------------------


@cooperatives.post(
    "/cooperatives",
    response_model=schemas.CooperativeOut,
    status_code=status.HTTP_201_CREATED,
    summary="Register a KKMP (admin)",
    responses={409: {"model": schemas.ErrorOut, "description": "The kelurahan already has a KKMP"}},
)
async def register(
    data: schemas.CooperativeCreate, session: SessionDep, outbox: OutboxDep, principal: AdminPrincipal
) -> Any:
    return await handlers.register_cooperative(session, outbox, principal, data)


@cooperatives.post(
    "/cooperatives/batch",
    response_model=schemas.ImportResult,
    status_code=status.HTTP_201_CREATED,
    summary="Register many KKMP at once (admin); all or none",
)
async def register_batch(
    data: schemas.CooperativeBatch, session: SessionDep, outbox: OutboxDep, principal: AdminPrincipal
) -> Any:
    ids = await handlers.register_batch(session, outbox, principal, data.cooperatives)
    return {"imported": len(ids), "ids": ids}


@cooperatives.post(
    "/cooperatives/import",
    response_model=schemas.ImportResult,
    status_code=status.HTTP_201_CREATED,
    summary="Import cooperatives from CSV or XLSX (admin); all rows or none",
    description="Columns: name, kelurahan_code, formation (new|revitalized), and optionally deed_number, "
    "deed_date, deed_notary, business_units (separated by ',' or ';'). A file with any bad row imports "
    "nothing; the answer lists every problem by row (the header is row 1) and field.",
)
async def import_cooperatives(
    session: SessionDep, outbox: OutboxDep, principal: AdminPrincipal, file: Annotated[UploadFile, File()]
) -> Any:
    content = await file.read()
    try:
        # Parsing a workbook is CPU work: off the event loop.
        rows = await asyncio.to_thread(importer.read_rows, file.filename or "", content)
    except importer.ImportFileError as exc:
        raise ApiError(422, "unreadable_file", str(exc), [{"field": "file", "message": str(exc)}]) from exc
    valid, errors = importer.validate_rows(rows)
    if valid:
        problems, _ = await handlers.registration_problems(session, [r.cooperative for r in valid])
        errors.extend({"row": valid[p.index].row, "field": p.field, "message": p.message} for p in problems)
    if errors:
        raise ApiError(
            422,
            "import_rejected",
            f"{len(errors)} problem(s) found; nothing was imported.",
            sorted(errors, key=lambda e: e["row"]),
        )

    def describe(p: handlers.RegistrationProblem) -> dict[str, Any]:
        return {"row": valid[p.index].row, "field": p.field, "message": p.message}

    ids = await handlers.register_batch(
        session, outbox, principal, [r.cooperative for r in valid], describe=describe
    )
    return {"imported": len(ids), "ids": ids}


@cooperatives.get(
    "/cooperatives", response_model=schemas.CooperativeList, summary="List cooperatives in scope"
)
async def list_cooperatives(
    session: SessionDep,
    principal: CurrentPrincipal,
    page: PageDep,
    kecamatan_code: KecamatanQuery = None,
    status_: Annotated[CooperativeStatus | None, Query(alias="status")] = None,
    q: Annotated[str | None, Query(max_length=100, description="Part of the name or kelurahan")] = None,
) -> Any:
    return await handlers.list_cooperatives(
        session,
        principal,
        kecamatan_code=kecamatan_code,
        status=status_,
        q=_text_query(q, "q"),
        limit=page.limit,
        offset=page.offset,
    )


@cooperatives.get("/cooperatives/{cooperative_id}", response_model=schemas.CooperativeOut)
async def get_cooperative(cooperative_id: IdPath, session: SessionDep, principal: CurrentPrincipal) -> Any:
    return await handlers.readable_cooperative(session, principal, cooperative_id)


@cooperatives.patch(
    "/cooperatives/{cooperative_id}",
    response_model=schemas.CooperativeOut,
    summary="Change a cooperative's profile or status (allowed transitions only)",
    description="Admins change everything; officers (in scope) the status, units and contacts; a "
    "manager its own units and contacts. Status: formed → operating → suspended → dissolved "
    "(suspended may resume; formed and operating may be dissolved); any other change is 409.",
)
async def patch_cooperative(
    cooperative_id: IdPath,
    data: schemas.CooperativeUpdate,
    session: SessionDep,
    outbox: OutboxDep,
    principal: CurrentPrincipal,
) -> Any:
    return await handlers.update_cooperative(session, outbox, principal, cooperative_id, data)


@cooperatives.get(
    "/cooperatives/{cooperative_id}/status-history",
    response_model=list[schemas.StatusChangeOut],
    summary="Every status change, with who and when",
)
async def get_status_history(cooperative_id: IdPath, session: SessionDep, principal: CurrentPrincipal) -> Any:
    return await handlers.status_history(session, principal, cooperative_id)


@cooperatives.put(
    "/cooperatives/{cooperative_id}/board",
    response_model=schemas.CooperativeOut,
    summary="Replace the board (pengurus and pengawas)",
)
async def put_board(
    cooperative_id: IdPath,
    data: schemas.BoardIn,
    session: SessionDep,
    outbox: OutboxDep,
    principal: CurrentPrincipal,
) -> Any:
    return await handlers.set_board(session, outbox, principal, cooperative_id, data)


@cooperatives.post(
    "/cooperatives/{cooperative_id}/members",
    response_model=schemas.MemberOut,
    status_code=status.HTTP_201_CREATED,
    summary="Register a member (resident or UMKM with its business)",
)
async def add_member(
    cooperative_id: IdPath,
    data: schemas.MemberCreate,
    session: SessionDep,
    outbox: OutboxDep,
    principal: CurrentPrincipal,
) -> Any:
    members, _ = await handlers.add_members(session, outbox, principal, cooperative_id, [data])
    return members[0]


@cooperatives.post(
    "/cooperatives/{cooperative_id}/members/batch",
    response_model=schemas.MemberBatchOut,
    status_code=status.HTTP_201_CREATED,
    summary="Register up to 1,000 members at once; all or none",
)
async def add_members(
    cooperative_id: IdPath,
    data: schemas.MemberBatch,
    session: SessionDep,
    outbox: OutboxDep,
    principal: CurrentPrincipal,
) -> Any:
    members, count = await handlers.add_members(
        session, outbox, principal, cooperative_id, data.members, batch=True
    )
    return {"items": members, "member_count": count}


@cooperatives.get("/cooperatives/{cooperative_id}/members", response_model=schemas.MemberList)
async def list_members(
    cooperative_id: IdPath,
    session: SessionDep,
    principal: CurrentPrincipal,
    page: PageDep,
    kind: Annotated[Literal["resident", "umkm"] | None, Query()] = None,
) -> Any:
    return await handlers.list_members(session, principal, cooperative_id, kind, page.limit, page.offset)


# --- potentials ---------------------------------------------------------------------------------


@potentials.post(
    "/kelurahan/{code}/potentials",
    response_model=schemas.PotentialOut,
    status_code=status.HTTP_201_CREATED,
    summary="Map a kelurahan's potential",
)
async def add_potential(
    code: KelurahanPath,
    data: schemas.PotentialCreate,
    session: SessionDep,
    outbox: OutboxDep,
    principal: CurrentPrincipal,
) -> Any:
    return await handlers.add_potential(session, outbox, principal, _kelurahan_code(code), data)


@potentials.get("/kelurahan/{code}/potentials", response_model=list[schemas.PotentialOut])
async def list_potentials(code: KelurahanPath, session: SessionDep, principal: CurrentPrincipal) -> Any:
    return await handlers.list_potentials(session, principal, _kelurahan_code(code))


@potentials.get(
    "/potentials", response_model=schemas.PotentialList, summary="Potentials across kelurahan, in scope"
)
async def search_potentials(
    session: SessionDep,
    principal: CurrentPrincipal,
    page: PageDep,
    kecamatan_code: KecamatanQuery = None,
    sector: Annotated[str | None, Query(max_length=100)] = None,
) -> Any:
    return await handlers.search_potentials(
        session,
        principal,
        kecamatan_code=kecamatan_code,
        sector=_text_query(sector, "sector"),
        limit=page.limit,
        offset=page.offset,
    )


def _kelurahan_code(code: str) -> str:
    """A path that is not a kelurahan code names no kelurahan: 404, as for an unknown one."""
    if not schemas.KELURAHAN_CODE_RE.match(code):
        raise ApiError(404, "not_found", "The kelurahan does not exist.")
    return code


# --- trainings ----------------------------------------------------------------------------------


@trainings.post(
    "/trainings",
    response_model=schemas.TrainingOut,
    status_code=status.HTTP_201_CREATED,
    summary="Plan a training (admin, officer)",
)
async def create_training(
    data: schemas.TrainingCreate, session: SessionDep, principal: StaffPrincipal
) -> Any:
    return await handlers.create_training(session, principal, data)


@trainings.get("/trainings", response_model=list[schemas.TrainingOut], summary="Trainings, newest first")
async def list_trainings(
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    cooperative_id: Annotated[str | None, Query(max_length=64)] = None,
    status_: Annotated[Literal["planned", "completed"] | None, Query(alias="status")] = None,
    # A bare list (the portal reads it whole): the page is large by default, clamped like every page.
    limit: Annotated[int, Query(ge=1)] = 500,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> Any:
    limit = min(limit, request.app.state.max_page_size)
    return await handlers.list_trainings(
        session, principal, _text_query(cooperative_id, "cooperative_id"), status_, limit, offset
    )


@trainings.get("/trainings/{training_id}", response_model=schemas.TrainingOut)
async def get_training(training_id: IdPath, session: SessionDep, principal: CurrentPrincipal) -> Any:
    return await handlers.get_training(session, principal, training_id)


@trainings.post(
    "/trainings/{training_id}/participants",
    response_model=schemas.TrainingOut,
    status_code=status.HTTP_201_CREATED,
    summary="Register participants (a manager: its own cooperative's people)",
)
async def add_participants(
    training_id: IdPath, data: schemas.ParticipantsIn, session: SessionDep, principal: CurrentPrincipal
) -> Any:
    return await handlers.add_participants(session, principal, training_id, data)


@trainings.post(
    "/trainings/{training_id}/complete",
    response_model=schemas.TrainingOut,
    summary="Mark a training completed (announces training.completed.v1 per cooperative)",
)
async def complete_training(
    training_id: IdPath,
    session: SessionDep,
    outbox: OutboxDep,
    principal: StaffPrincipal,
    data: Annotated[schemas.TrainingComplete | None, Body()] = None,
) -> Any:
    return await handlers.complete_training(
        session, outbox, principal, training_id, data or schemas.TrainingComplete()
    )


ROUTERS = [regions, auth, people, cooperatives, potentials, trainings]
