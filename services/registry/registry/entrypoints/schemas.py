"""Request and response models of the registry API (Create / Update / Public per entity).

Request models forbid unknown fields: a client that sends `role`, `status` or `id` where they are not
accepted is told so (422) instead of having them silently applied or dropped.
"""

from __future__ import annotations

import datetime as dt
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from registry.domain.rules import BOARD_POSITIONS, BUSINESS_UNITS, COOPERATIVE_STATUSES

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=200)]
Code = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\d{2}(\.\d{2}){2}(\.\d{4})?$")]
KecamatanCode = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\d{2}\.\d{2}\.\d{2}$")]
KelurahanCode = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^\d{2}\.\d{2}\.\d{2}\.\d{4}$")
]
BusinessUnit = Literal[BUSINESS_UNITS]  # type: ignore[valid-type]
BoardPosition = Literal[BOARD_POSITIONS]  # type: ignore[valid-type]
Status = Literal[COOPERATIVE_STATUSES]  # type: ignore[valid-type]
Role = Literal["admin", "officer", "coop_manager", "supplier", "service"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KecamatanOut(BaseModel):
    code: str
    name: str
    lat: float | None = None
    lon: float | None = None


class KelurahanOut(BaseModel):
    code: str
    name: str
    kecamatan_code: str
    lat: float | None = None
    lon: float | None = None


class Deed(Strict):
    number: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    date: date
    notary: Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=200)]

    @field_validator("date")
    @classmethod
    def _not_future(cls, value: date) -> date:
        if value > date.today():
            raise ValueError("the deed date cannot be in the future")
        return value


class CooperativeCreate(Strict):
    name: Name
    kelurahan_code: KelurahanCode
    formation: Literal["new", "revitalized"]
    deed: Deed | None = None
    business_units: list[BusinessUnit] = Field(
        default_factory=lambda: ["sembako"], max_length=len(BUSINESS_UNITS)
    )
    address: Annotated[str, StringConstraints(max_length=300)] | None = None
    phone: Annotated[str, StringConstraints(max_length=40)] | None = None


class CooperativeUpdate(Strict):
    name: Name | None = None
    formation: Literal["new", "revitalized"] | None = None
    deed: Deed | None = None
    business_units: list[BusinessUnit] | None = Field(default=None, max_length=len(BUSINESS_UNITS))
    address: Annotated[str, StringConstraints(max_length=300)] | None = None
    phone: Annotated[str, StringConstraints(max_length=40)] | None = None
    status: Status | None = None
    status_reason: Annotated[str, StringConstraints(max_length=500)] | None = None


class BoardMemberIn(Strict):
    name: Name
    position: BoardPosition
    phone: Annotated[str, StringConstraints(max_length=40)] | None = None
    since: date | None = None


class BoardMemberOut(BaseModel):
    id: str
    name: str
    position: str
    phone: str | None = None
    since: date | None = None


class BoardIn(Strict):
    members: list[BoardMemberIn] = Field(max_length=30)


class DeedOut(BaseModel):
    number: str | None = None
    date: dt.date | None = None
    notary: str | None = None


class CooperativeOut(BaseModel):
    id: str
    name: str
    kelurahan_code: str
    kelurahan_name: str | None = None
    kecamatan_code: str
    kecamatan_name: str | None = None
    formation: str
    deed: DeedOut | None = None
    status: str
    business_units: list[str]
    board: list[BoardMemberOut] = []
    member_count: int
    address: str | None = None
    phone: str | None = None
    lat: float | None = None
    lon: float | None = None
    created_at: datetime
    updated_at: datetime


class CooperativeList(BaseModel):
    items: list[CooperativeOut]
    total: int
    limit: int
    offset: int


class StatusChangeOut(BaseModel):
    old_status: str | None
    new_status: str
    reason: str | None
    changed_by: str | None
    changed_at: datetime


class Business(Strict):
    sector: Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=100)]
    products: list[Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]] = (
        Field(default_factory=list, max_length=50)
    )


class MemberCreate(Strict):
    name: Name
    kind: Literal["resident", "umkm"]
    business: Business | None = None


class MemberOut(BaseModel):
    id: str
    cooperative_id: str
    name: str
    kind: str
    business: Business | None = None
    joined_at: datetime


class MemberList(BaseModel):
    items: list[MemberOut]
    total: int


class PotentialCreate(Strict):
    sector: Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=100)]
    description: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=2000)]
    priority: int = Field(ge=1, le=5, description="1 = highest")


class PotentialOut(BaseModel):
    id: str
    kelurahan_code: str
    sector: str
    description: str
    priority: int
    created_at: datetime


class TrainingCreate(Strict):
    title: Name
    topic: Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=100)]
    description: Annotated[str, StringConstraints(max_length=2000)] | None = None
    kecamatan_code: KecamatanCode | None = None
    starts_on: date
    ends_on: date | None = None
    location: Annotated[str, StringConstraints(max_length=200)] | None = None


class ParticipantIn(Strict):
    cooperative_id: str
    name: Name
    role: Annotated[str, StringConstraints(max_length=40)] | None = None


class ParticipantsIn(Strict):
    participants: list[ParticipantIn] = Field(min_length=1, max_length=500)


class ParticipantOut(BaseModel):
    id: str
    cooperative_id: str
    name: str
    role: str | None = None
    attended: bool


class TrainingOut(BaseModel):
    id: str
    title: str
    topic: str
    description: str | None = None
    kecamatan_code: str | None = None
    starts_on: date
    ends_on: date | None = None
    location: str | None = None
    status: str
    completed_at: datetime | None = None
    participants: list[ParticipantOut] = []


class TrainingComplete(Strict):
    attended: list[str] | None = Field(
        default=None, description="Participant ids who attended (default: all)"
    )


class UserCreate(Strict):
    username: Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[a-zA-Z0-9_.\-]{3,100}$")]
    password: Annotated[str, StringConstraints(min_length=8, max_length=200)]
    role: Role
    cooperative_id: str | None = None
    supplier_id: str | None = None
    kecamatan_codes: list[KecamatanCode] = Field(default_factory=list, max_length=100)
    full_name: Annotated[str, StringConstraints(max_length=200)] | None = None
    email: Annotated[str, StringConstraints(max_length=200, pattern=r"^[^@\s]+@[^@\s]+$")] | None = None
    supervisor: bool = False


class UserOut(BaseModel):
    id: str
    username: str
    role: str
    cooperative_id: str | None = None
    supplier_id: str | None = None
    kecamatan_codes: list[str] = []
    full_name: str | None = None
    email: str | None = None
    supervisor: bool = False
    active: bool = True
    created_at: datetime


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


class ImportRowError(BaseModel):
    row: int
    field: str
    message: str


class ImportResult(BaseModel):
    imported: int
    ids: list[str]
