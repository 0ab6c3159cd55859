"""Regions: public reference data (codes, names and points, nothing personal)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from kkmp_shared.app import ReadSessionDep

from registry.entrypoints import schemas
from registry.entrypoints.params import ERRORS, KecamatanQuery
from registry.service_layer import regions

router = APIRouter(tags=["regions"], responses=ERRORS)


@router.get("/regions/kecamatan", response_model=list[schemas.KecamatanOut], summary="The kecamatan")
async def list_kecamatan(session: ReadSessionDep) -> Any:
    return await regions.list_kecamatan(session)


@router.get("/regions/kelurahan", response_model=list[schemas.KelurahanOut], summary="The kelurahan")
async def list_kelurahan(session: ReadSessionDep, kecamatan_code: KecamatanQuery = None) -> Any:
    return await regions.list_kelurahan(session, kecamatan_code)


@router.get("/regions/summary", summary="How many regions are loaded")
async def region_summary(session: ReadSessionDep) -> dict[str, int]:
    return await regions.summary(session)
