"""Potentials mapped per kelurahan, and searched across kelurahan."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from kkmp_shared.app import ReadSessionDep, UowDep
from kkmp_shared.auth import CurrentPrincipal
from kkmp_shared.pagination import PageDep

from registry.entrypoints import schemas
from registry.entrypoints.params import ERRORS, KecamatanQuery, KelurahanPath, kelurahan_code, text_query
from registry.service_layer import potentials

router = APIRouter(tags=["potentials"], responses=ERRORS)


@router.post(
    "/kelurahan/{code}/potentials",
    response_model=schemas.PotentialOut,
    status_code=status.HTTP_201_CREATED,
    summary="Map a kelurahan's potential",
)
async def add_potential(
    code: KelurahanPath, data: schemas.PotentialCreate, uow: UowDep, principal: CurrentPrincipal
) -> Any:
    return await potentials.add_potential(uow, principal, data.command(kelurahan_code(code)))


@router.get("/kelurahan/{code}/potentials", response_model=list[schemas.PotentialOut])
async def list_potentials(code: KelurahanPath, session: ReadSessionDep, principal: CurrentPrincipal) -> Any:
    return await potentials.list_potentials(session, principal, kelurahan_code(code))


@router.get(
    "/potentials", response_model=schemas.PotentialList, summary="Potentials across kelurahan, in scope"
)
async def search_potentials(
    session: ReadSessionDep,
    principal: CurrentPrincipal,
    page: PageDep,
    kecamatan_code: KecamatanQuery = None,
    sector: Annotated[str | None, Query(max_length=100)] = None,
) -> Any:
    return await potentials.search_potentials(
        session,
        principal,
        kecamatan_code=kecamatan_code,
        sector=text_query(sector, "sector"),
        limit=page.limit,
        offset=page.offset,
    )
