"""User accounts: created and listed by an admin; everyone reads their own and changes its password."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status
from kkmp_shared.app import ReadSessionDep, UowDep
from kkmp_shared.auth import AdminPrincipal, CurrentPrincipal, Principal
from kkmp_shared.errors import ApiError
from kkmp_shared.pagination import PageDep

from registry.entrypoints import schemas
from registry.entrypoints.params import ERRORS, IdPath, text_query
from registry.entrypoints.routes.auth import LoginDep
from registry.service_layer import users
from registry.service_layer.commands import ChangePassword

router = APIRouter(tags=["users"], responses=ERRORS)


def _person(principal: Principal) -> Principal:
    if principal.role == "service":
        raise ApiError(404, "not_found", "A service client has no user account.")
    return principal


@router.post(
    "/users",
    response_model=schemas.UserOut,
    status_code=status.HTTP_201_CREATED,
    summary="Create a user (admin); a coop_manager is bound to one cooperative",
)
async def create_user(data: schemas.UserCreate, uow: UowDep, _: AdminPrincipal) -> Any:
    return await users.create_user(uow, data.command())


@router.get("/users", response_model=list[schemas.UserOut], summary="List users (admin)")
async def list_users(
    session: ReadSessionDep,
    _: AdminPrincipal,
    page: PageDep,
    role: Annotated[schemas.Role | None, Query()] = None,
    cooperative_id: Annotated[str | None, Query(max_length=64)] = None,
) -> Any:
    text_query(cooperative_id, "cooperative_id")
    return await users.list_users(
        session, role=role, cooperative_id=cooperative_id, limit=page.limit, offset=page.offset
    )


@router.get("/users/me", response_model=schemas.UserOut, summary="The caller's own account")
async def me(session: ReadSessionDep, principal: CurrentPrincipal) -> Any:
    return await users.get_user(session, _person(principal).sub)


@router.post(
    "/users/me/password",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=schemas.error_responses(429),
    summary="Change the caller's own password",
)
async def change_password(
    data: schemas.PasswordChange, login: LoginDep, principal: CurrentPrincipal
) -> Response:
    person = _person(principal)
    await login.change_password(
        ChangePassword(
            user_id=person.sub,
            login=person.username or person.sub,
            current_password=data.current_password,
            new_password=data.new_password,
        )
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/users/{user_id}", response_model=schemas.UserOut, summary="One user (admin)")
async def get_user(user_id: IdPath, session: ReadSessionDep, _: AdminPrincipal) -> Any:
    return await users.get_user(session, user_id)
