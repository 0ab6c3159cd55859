"""Cooperatives (KKMP): registration (one, a batch, a file), reading in scope, profile and status
changes, the board and the members."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Query, UploadFile, status
from kkmp_shared.app import ReadSessionDep, UowDep
from kkmp_shared.auth import AdminPrincipal, CurrentPrincipal
from kkmp_shared.errors import ApiError
from kkmp_shared.pagination import PageDep

from registry.entrypoints import importer, schemas
from registry.entrypoints.params import ERRORS, IdPath, KecamatanQuery, text_query
from registry.service_layer import cooperatives, members
from registry.service_layer.commands import AddMembers, ImportedRow

router = APIRouter(tags=["cooperatives"], responses=ERRORS)

CooperativeStatus = Literal["formed", "operating", "suspended", "dissolved"]


@router.post(
    "/cooperatives",
    response_model=schemas.CooperativeOut,
    status_code=status.HTTP_201_CREATED,
    summary="Register a KKMP (admin)",
    responses={409: {"model": schemas.ErrorOut, "description": "The kelurahan already has a KKMP"}},
)
async def register(data: schemas.CooperativeCreate, uow: UowDep, principal: AdminPrincipal) -> Any:
    return await cooperatives.register_cooperative(uow, principal, data.command())


@router.post(
    "/cooperatives/batch",
    response_model=schemas.ImportResult,
    status_code=status.HTTP_201_CREATED,
    summary="Register many KKMP at once (admin); all or none",
)
async def register_batch(data: schemas.CooperativeBatch, uow: UowDep, principal: AdminPrincipal) -> Any:
    ids = await cooperatives.register_batch(uow, principal, [c.command() for c in data.cooperatives])
    return {"imported": len(ids), "ids": ids}


@router.post(
    "/cooperatives/import",
    response_model=schemas.ImportResult,
    status_code=status.HTTP_201_CREATED,
    summary="Import cooperatives from CSV or XLSX (admin); all rows or none",
    description="Columns: name, kelurahan_code, formation (new|revitalized), and optionally deed_number, "
    "deed_date, deed_notary, business_units (separated by ',' or ';'). A file with any bad row imports "
    "nothing; the answer lists every problem by row (the header is row 1) and field.",
)
async def import_cooperatives(
    uow: UowDep, principal: AdminPrincipal, file: Annotated[UploadFile, File()]
) -> Any:
    content = await file.read()
    try:
        # Parsing a workbook is CPU work: off the event loop.
        rows = await asyncio.to_thread(importer.read_rows, file.filename or "", content)
    except importer.ImportFileError as exc:
        raise ApiError(422, "unreadable_file", str(exc), [{"field": "file", "message": str(exc)}]) from exc
    valid, errors = importer.validate_rows(rows)
    commands = [ImportedRow(r.row, r.cooperative.command()) for r in valid]
    ids = await cooperatives.import_cooperatives(uow, principal, commands, errors)
    return {"imported": len(ids), "ids": ids}


@router.get("/cooperatives", response_model=schemas.CooperativeList, summary="List cooperatives in scope")
async def list_cooperatives(
    session: ReadSessionDep,
    principal: CurrentPrincipal,
    page: PageDep,
    kecamatan_code: KecamatanQuery = None,
    status_: Annotated[CooperativeStatus | None, Query(alias="status")] = None,
    q: Annotated[str | None, Query(max_length=100, description="Part of the name or kelurahan")] = None,
) -> Any:
    return await cooperatives.list_cooperatives(
        session,
        principal,
        kecamatan_code=kecamatan_code,
        status=status_,
        q=text_query(q, "q"),
        limit=page.limit,
        offset=page.offset,
    )


@router.get("/cooperatives/{cooperative_id}", response_model=schemas.CooperativeOut)
async def get_cooperative(
    cooperative_id: IdPath, session: ReadSessionDep, principal: CurrentPrincipal
) -> Any:
    return await cooperatives.readable_cooperative(session, principal, cooperative_id)


@router.patch(
    "/cooperatives/{cooperative_id}",
    response_model=schemas.CooperativeOut,
    summary="Change a cooperative's profile or status (allowed transitions only)",
    description="Admins change everything; officers (in scope) the status, units and contacts; a "
    "manager its own units and contacts. Status: formed → operating → suspended → dissolved "
    "(suspended may resume; formed and operating may be dissolved); any other change is 409.",
)
async def patch_cooperative(
    cooperative_id: IdPath, data: schemas.CooperativeUpdate, uow: UowDep, principal: CurrentPrincipal
) -> Any:
    return await cooperatives.update_cooperative(uow, principal, data.command(cooperative_id))


@router.get(
    "/cooperatives/{cooperative_id}/status-history",
    response_model=list[schemas.StatusChangeOut],
    summary="Every status change, with who and when",
)
async def get_status_history(
    cooperative_id: IdPath, session: ReadSessionDep, principal: CurrentPrincipal
) -> Any:
    return await cooperatives.status_history(session, principal, cooperative_id)


@router.put(
    "/cooperatives/{cooperative_id}/board",
    response_model=schemas.CooperativeOut,
    summary="Replace the board (pengurus and pengawas)",
)
async def put_board(
    cooperative_id: IdPath, data: schemas.BoardIn, uow: UowDep, principal: CurrentPrincipal
) -> Any:
    return await members.set_board(uow, principal, data.command(cooperative_id))


@router.post(
    "/cooperatives/{cooperative_id}/members",
    response_model=schemas.MemberOut,
    status_code=status.HTTP_201_CREATED,
    summary="Register a member (resident or UMKM with its business)",
)
async def add_member(
    cooperative_id: IdPath, data: schemas.MemberCreate, uow: UowDep, principal: CurrentPrincipal
) -> Any:
    added, _ = await members.add_members(uow, principal, AddMembers(cooperative_id, [data.command()]))
    return added[0]


@router.post(
    "/cooperatives/{cooperative_id}/members/batch",
    response_model=schemas.MemberBatchOut,
    status_code=status.HTTP_201_CREATED,
    summary="Register up to 1,000 members at once; all or none",
)
async def add_members(
    cooperative_id: IdPath, data: schemas.MemberBatch, uow: UowDep, principal: CurrentPrincipal
) -> Any:
    command = AddMembers(cooperative_id, [m.command() for m in data.members], batch=True)
    added, count = await members.add_members(uow, principal, command)
    return {"items": added, "member_count": count}


@router.get("/cooperatives/{cooperative_id}/members", response_model=schemas.MemberList)
async def list_members(
    cooperative_id: IdPath,
    session: ReadSessionDep,
    principal: CurrentPrincipal,
    page: PageDep,
    kind: Annotated[Literal["resident", "umkm"] | None, Query()] = None,
) -> Any:
    return await members.list_members(session, principal, cooperative_id, kind, page.limit, page.offset)
