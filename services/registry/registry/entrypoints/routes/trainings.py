"""Trainings: planned by staff, attended by cooperatives' people, completed with who attended."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Request, status
from kkmp_shared.app import ReadSessionDep, UowDep
from kkmp_shared.auth import CurrentPrincipal, StaffPrincipal

from registry.entrypoints import schemas
from registry.entrypoints.params import ERRORS, IdPath, text_query
from registry.service_layer import trainings

router = APIRouter(tags=["trainings"], responses=ERRORS)


@router.post(
    "/trainings",
    response_model=schemas.TrainingOut,
    status_code=status.HTTP_201_CREATED,
    summary="Plan a training (admin, officer)",
)
async def create_training(data: schemas.TrainingCreate, uow: UowDep, principal: StaffPrincipal) -> Any:
    return await trainings.create_training(uow, principal, data.command())


@router.get("/trainings", response_model=list[schemas.TrainingOut], summary="Trainings, newest first")
async def list_trainings(
    request: Request,
    session: ReadSessionDep,
    principal: CurrentPrincipal,
    cooperative_id: Annotated[str | None, Query(max_length=64)] = None,
    status_: Annotated[Literal["planned", "completed"] | None, Query(alias="status")] = None,
    # A bare list (the portal reads it whole): the page is large by default, clamped like every page.
    limit: Annotated[int, Query(ge=1)] = 500,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> Any:
    limit = min(limit, request.app.state.max_page_size)
    return await trainings.list_trainings(
        session, principal, text_query(cooperative_id, "cooperative_id"), status_, limit, offset
    )


@router.get("/trainings/{training_id}", response_model=schemas.TrainingOut)
async def get_training(training_id: IdPath, session: ReadSessionDep, principal: CurrentPrincipal) -> Any:
    return await trainings.get_training(session, principal, training_id)


@router.post(
    "/trainings/{training_id}/participants",
    response_model=schemas.TrainingOut,
    status_code=status.HTTP_201_CREATED,
    summary="Register participants (a manager: its own cooperative's people)",
)
async def add_participants(
    training_id: IdPath, data: schemas.ParticipantsIn, uow: UowDep, principal: CurrentPrincipal
) -> Any:
    return await trainings.add_participants(uow, principal, data.command(training_id))


@router.post(
    "/trainings/{training_id}/complete",
    response_model=schemas.TrainingOut,
    summary="Mark a training completed (announces training.completed.v1 per cooperative)",
)
async def complete_training(
    training_id: IdPath,
    uow: UowDep,
    principal: StaffPrincipal,
    data: Annotated[schemas.TrainingComplete | None, Body()] = None,
) -> Any:
    return await trainings.complete_training(
        uow, principal, (data or schemas.TrainingComplete()).command(training_id)
    )
