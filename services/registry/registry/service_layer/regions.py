"""Regions (kecamatan, kelurahan): public reference data, loaded from the reference CSVs at start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kkmp_shared.unit_of_work import UnitOfWork
from sqlalchemy.ext.asyncio import AsyncSession

from registry.adapters import regions
from registry.domain.rules import load_regions


async def load_reference_regions(uow: UnitOfWork, kelurahan_csv: Path, coords_csv: Path) -> tuple[int, int]:
    """Upsert the regions of the CSVs: loading again never duplicates, a new list extends. Returns how
    many kecamatan and kelurahan the files hold."""
    kecamatan, kelurahan = load_regions(kelurahan_csv, coords_csv)
    await regions.upsert(uow.session, kecamatan, kelurahan)
    return len(kecamatan), len(kelurahan)


async def list_kecamatan(session: AsyncSession) -> list[dict[str, Any]]:
    return await regions.kecamatan_list(session)


async def list_kelurahan(session: AsyncSession, kecamatan_code: str | None) -> list[dict[str, Any]]:
    return await regions.kelurahan_list(session, kecamatan_code)


async def summary(session: AsyncSession) -> dict[str, int]:
    return await regions.counts(session)
