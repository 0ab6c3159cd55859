"""The registry's HTTP routes: thin adapters over the service layer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Query, Request, UploadFile, status
from kkmp_shared.app import OutboxDep, SessionDep
from kkmp_shared.auth import AdminPrincipal, CurrentPrincipal, StaffPrincipal
from kkmp_shared.errors import ApiError, conflict, forbidden, unprocessable
from kkmp_shared.pagination import PageDep
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from registry.adapters import orm
from registry.entrypoints import schemas
from registry.service_layer import handlers, importer

regions = APIRouter(tags=["regions"])
auth = APIRouter(tags=["auth"])
cooperatives = APIRouter(tags=["cooperatives"])
people = APIRouter(tags=["users"])
potentials = APIRouter(tags=["potentials"])
trainings = APIRouter(tags=["trainings"])

# --- regions (public reference data: codes, names and points, nothing personal) ------------------


@regions.get("/regions/kecamatan", response_model=list[schemas.KecamatanOut], summary="The kecamatan")
async def list_kecamatan(session: SessionDep) -> Any:
    rows = await session.execute(select(orm.kecamatan).order_by(orm.kecamatan.c.code))
    return [dict(r._mapping) for r in rows]


@regions.get("/regions/kelurahan", response_model=list[schemas.KelurahanOut], summary="The kelurahan")
async def list_kelurahan(
    session: SessionDep,
    kecamatan_code: Annotated[str | None, Query(max_length=20)] = None,
) -> Any:
    query = select(orm.kelurahan).order_by(orm.kelurahan.c.code)
    if kecamatan_code:
        query = query.where(orm.kelurahan.c.kecamatan_code == kecamatan_code)
    return [dict(r._mapping) for r in await session.execute(query)]


# --- auth ---------------------------------------------------------------------------------------


@auth.get("/.well-known/jwks.json", summary="Public keys that verify the registry's tokens")
async def jwks(request: Request) -> dict[str, Any]:
    return request.app.state.signing_key.jwks()  # type: ignore[no-any-return]


@auth.post(
    "/auth/token",
    response_model=schemas.TokenOut,
    summary="OAuth2 token: password grant for people, client_credentials for services",
    responses={401: {"description": "Bad credentials"}, 429: {"description": "Too many failed attempts"}},
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
    key = request.app.state.signing_key
    ttl = settings.token_ttl_s
    if grant_type == "client_credentials":
        clients: dict[str, str] = request.app.state.service_clients
        if not client_id or not client_secret or clients.get(client_id) != client_secret:
            raise ApiError(401, "invalid_client", "Unknown client or wrong secret.")
        claims = {"sub": f"service:{client_id}", "role": "service", "username": client_id}
        return {
            "access_token": key.sign(
                claims, issuer=settings.jwt_issuer, audience=settings.jwt_audience, ttl_s=ttl
            ),
            "token_type": "bearer",
            "expires_in": ttl,
        }
    if not username or not password:
        raise unprocessable("username", "username and password are required for the password grant.")
    client_ip = request.client.host if request.client else "unknown"
    user_key, ip_key = f"user:{username.lower()}", f"ip:{client_ip}"
    since = datetime.now(UTC) - timedelta(seconds=settings.login_window_s)
    if (
        await handlers.recent_failures(session, user_key, since) >= settings.login_max_failures
        or await handlers.recent_failures(session, ip_key, since) >= settings.login_max_failures * 4
    ):
        raise ApiError(
            429,
            "rate_limited",
            "Too many failed logins; try again later.",
            headers={"Retry-After": str(settings.login_window_s)},
        )
    user = await handlers.authenticate(session, username, password)
    if user is None:
        await handlers.record_failure(session, [user_key, ip_key])
        raise ApiError(
            401, "invalid_credentials", "Wrong username or password.", headers={"WWW-Authenticate": "Bearer"}
        )
    await handlers.clear_failures(session, user_key)
    claims = handlers.claims_for(user)
    return {
        "access_token": key.sign(
            claims, issuer=settings.jwt_issuer, audience=settings.jwt_audience, ttl_s=ttl
        ),
        "token_type": "bearer",
        "expires_in": ttl,
    }


# --- users --------------------------------------------------------------------------------------


@people.post(
    "/users",
    response_model=schemas.UserOut,
    status_code=status.HTTP_201_CREATED,
    summary="Create a user (admin)",
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
    role: Annotated[str | None, Query(max_length=20)] = None,
) -> Any:
    return await handlers.list_users(session, role, page.limit, page.offset)


@people.get("/users/me", response_model=schemas.UserOut, summary="The caller's own account")
async def me(session: SessionDep, principal: CurrentPrincipal) -> Any:
    if principal.role == "service":
        raise ApiError(404, "not_found", "A service client has no user account.")
    return await handlers.get_user(session, principal.sub)


# --- cooperatives -------------------------------------------------------------------------------


@cooperatives.post(
    "/cooperatives",
    response_model=schemas.CooperativeOut,
    status_code=status.HTTP_201_CREATED,
    summary="Register a KKMP (admin)",
    responses={409: {"description": "The kelurahan already has a KKMP"}},
)
async def register(
    data: schemas.CooperativeCreate, session: SessionDep, outbox: OutboxDep, principal: AdminPrincipal
) -> Any:
    return await handlers.register_cooperative(session, outbox, principal, data)


@cooperatives.post(
    "/cooperatives/import",
    response_model=schemas.ImportResult,
    status_code=status.HTTP_201_CREATED,
    summary="Import cooperatives from CSV or XLSX (admin); all rows or none",
)
async def import_cooperatives(
    session: SessionDep, outbox: OutboxDep, principal: AdminPrincipal, file: Annotated[UploadFile, File()]
) -> Any:
    content = await file.read()
    try:
        rows = importer.read_rows(file.filename or "", content)
    except importer.ImportFileError as exc:
        raise ApiError(422, "unreadable_file", str(exc), [{"field": "file", "message": str(exc)}]) from exc
    valid, errors = importer.validate_rows(rows)
    seen: dict[str, int] = {}
    known = {r for (r,) in (await session.execute(select(orm.kelurahan.c.code))).all()}
    taken = {r for (r,) in (await session.execute(select(orm.cooperatives.c.kelurahan_code))).all()}
    for number, item in enumerate(valid, start=2):
        code = item.kelurahan_code
        if code not in known:
            errors.append(
                {"row": number, "field": "kelurahan_code", "message": f"Unknown kelurahan code {code}."}
            )
        elif code in taken:
            errors.append(
                {"row": number, "field": "kelurahan_code", "message": f"{code} already has a KKMP."}
            )
        elif code in seen:
            errors.append(
                {"row": number, "field": "kelurahan_code", "message": f"{code} repeats row {seen[code]}."}
            )
        seen.setdefault(code, number)
    if errors:
        raise ApiError(
            422,
            "import_rejected",
            f"{len(errors)} problem(s) found; nothing was imported.",
            sorted(errors, key=lambda e: e["row"]),
        )
    ids = [
        (await handlers.register_cooperative(session, outbox, principal, item, commit=False))["id"]
        for item in valid
    ]
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise conflict("import_conflict", "Another registration changed these kelurahan meanwhile.") from exc
    return {"imported": len(ids), "ids": ids}


@cooperatives.get(
    "/cooperatives", response_model=schemas.CooperativeList, summary="List cooperatives in scope"
)
async def list_cooperatives(
    session: SessionDep,
    principal: CurrentPrincipal,
    page: PageDep,
    kecamatan_code: Annotated[str | None, Query(max_length=20)] = None,
    status_: Annotated[str | None, Query(alias="status", max_length=20)] = None,
    q: Annotated[str | None, Query(max_length=100)] = None,
) -> Any:
    return await handlers.list_cooperatives(
        session,
        principal,
        kecamatan_code=kecamatan_code,
        status=status_,
        q=q,
        limit=page.limit,
        offset=page.offset,
    )


@cooperatives.get("/cooperatives/{cooperative_id}", response_model=schemas.CooperativeOut)
async def get_cooperative(cooperative_id: str, session: SessionDep, principal: CurrentPrincipal) -> Any:
    return await handlers.readable_cooperative(session, principal, cooperative_id)


@cooperatives.patch(
    "/cooperatives/{cooperative_id}",
    response_model=schemas.CooperativeOut,
    summary="Change a cooperative's profile or status (allowed transitions only)",
)
async def patch_cooperative(
    cooperative_id: str,
    data: schemas.CooperativeUpdate,
    session: SessionDep,
    outbox: OutboxDep,
    principal: CurrentPrincipal,
) -> Any:
    return await handlers.update_cooperative(session, outbox, principal, cooperative_id, data)


@cooperatives.get(
    "/cooperatives/{cooperative_id}/status-history", response_model=list[schemas.StatusChangeOut]
)
async def get_status_history(cooperative_id: str, session: SessionDep, principal: CurrentPrincipal) -> Any:
    return await handlers.status_history(session, principal, cooperative_id)


@cooperatives.put(
    "/cooperatives/{cooperative_id}/board",
    response_model=schemas.CooperativeOut,
    summary="Replace the board (pengurus and pengawas)",
)
async def put_board(
    cooperative_id: str, data: schemas.BoardIn, session: SessionDep, principal: CurrentPrincipal
) -> Any:
    return await handlers.set_board(session, principal, cooperative_id, data)


@cooperatives.post(
    "/cooperatives/{cooperative_id}/members",
    response_model=schemas.MemberOut,
    status_code=status.HTTP_201_CREATED,
)
async def add_member(
    cooperative_id: str,
    data: schemas.MemberCreate,
    session: SessionDep,
    outbox: OutboxDep,
    principal: CurrentPrincipal,
) -> Any:
    return await handlers.add_member(session, outbox, principal, cooperative_id, data)


@cooperatives.get("/cooperatives/{cooperative_id}/members", response_model=schemas.MemberList)
async def list_members(
    cooperative_id: str,
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
    code: str,
    data: schemas.PotentialCreate,
    session: SessionDep,
    outbox: OutboxDep,
    principal: CurrentPrincipal,
) -> Any:
    return await handlers.add_potential(session, outbox, principal, code, data)


@potentials.get("/kelurahan/{code}/potentials", response_model=list[schemas.PotentialOut])
async def list_potentials(code: str, session: SessionDep, principal: CurrentPrincipal) -> Any:
    return await handlers.list_potentials(session, principal, code)


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


@trainings.get("/trainings", response_model=list[schemas.TrainingOut])
async def list_trainings(
    session: SessionDep,
    principal: CurrentPrincipal,
    cooperative_id: Annotated[str | None, Query(max_length=64)] = None,
    status_: Annotated[Literal["planned", "completed"] | None, Query(alias="status")] = None,
) -> Any:
    return await handlers.list_trainings(session, principal, cooperative_id, status_)


@trainings.get("/trainings/{training_id}", response_model=schemas.TrainingOut)
async def get_training(training_id: str, session: SessionDep, principal: CurrentPrincipal) -> Any:
    return await handlers.get_training(session, principal, training_id)


@trainings.post(
    "/trainings/{training_id}/participants",
    response_model=schemas.TrainingOut,
    status_code=status.HTTP_201_CREATED,
    summary="Register participants",
)
async def add_participants(
    training_id: str, data: schemas.ParticipantsIn, session: SessionDep, principal: CurrentPrincipal
) -> Any:
    if principal.role == "supplier":
        raise forbidden()
    return await handlers.add_participants(session, principal, training_id, data)


@trainings.post(
    "/trainings/{training_id}/complete",
    response_model=schemas.TrainingOut,
    summary="Mark a training completed (announces training.completed.v1 per cooperative)",
)
async def complete_training(
    training_id: str,
    data: schemas.TrainingComplete,
    session: SessionDep,
    outbox: OutboxDep,
    principal: StaffPrincipal,
) -> Any:
    return await handlers.complete_training(session, outbox, principal, training_id, data)


@regions.get("/regions/summary", summary="How many regions and cooperatives are registered")
async def region_summary(session: SessionDep) -> dict[str, int]:
    kec = (await session.execute(select(func.count()).select_from(orm.kecamatan))).scalar_one()
    kel = (await session.execute(select(func.count()).select_from(orm.kelurahan))).scalar_one()
    return {"kecamatan": kec, "kelurahan": kel}


ROUTERS = [regions, auth, people, cooperatives, potentials, trainings]
