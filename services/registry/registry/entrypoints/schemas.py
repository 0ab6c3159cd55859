"""Request and response models of the registry API (Create / Update / Public per entity).

Request models forbid unknown fields: a client that sends `role`, `status` or `id` where they are not
accepted is told so (422) instead of having them silently applied or dropped.
"""

from __future__ import annotations

import datetime as dt
import re
from datetime import date, datetime
from typing import Annotated, Literal

from kkmp_shared import clock
from kkmp_shared.http import KecamatanCode as KecamatanCode
from kkmp_shared.timeutil import as_utc as as_utc
from kkmp_shared.validation import COMMON_ERRORS as COMMON_ERRORS
from kkmp_shared.validation import TRIMMED, Strict
from kkmp_shared.validation import ErrorOut as ErrorOut
from kkmp_shared.validation import error_responses as error_responses
from kkmp_shared.validation import storable_text as storable_text
from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, StringConstraints, field_validator

from registry.domain.rules import (
    BOARD_POSITIONS,
    BUSINESS_UNITS,
    COOPERATIVE_STATUSES,
    normalise_board_position,
)
from registry.service_layer import commands

Name = Annotated[str, StringConstraints(min_length=2, max_length=200), TRIMMED]
Code = Annotated[str, StringConstraints(pattern=r"^\d{2}(\.\d{2}){2}(\.\d{4})?$")]
KelurahanCode = Annotated[str, StringConstraints(pattern=r"^\d{2}\.\d{2}\.\d{2}\.\d{4}$")]
KELURAHAN_CODE_RE = re.compile(r"^\d{2}\.\d{2}\.\d{2}\.\d{4}$")
BusinessUnit = Literal[BUSINESS_UNITS]  # type: ignore[valid-type]
BoardPosition = Literal[BOARD_POSITIONS]  # type: ignore[valid-type]
Status = Literal[COOPERATIVE_STATUSES]  # type: ignore[valid-type]
Role = Literal["admin", "officer", "coop_manager", "supplier", "service"]


def _not_future(value: datetime) -> datetime:
    value = as_utc(value)
    # A little slack: the client's clock may run a few seconds ahead of ours.
    if (value - clock.now()).total_seconds() > 300:
        raise ValueError("cannot be in the future")
    return value


UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]
PastDatetime = Annotated[datetime, AfterValidator(_not_future)]


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
    number: Annotated[str, StringConstraints(min_length=1, max_length=100), TRIMMED]
    date: dt.date
    notary: Annotated[str, StringConstraints(min_length=2, max_length=200), TRIMMED]

    @field_validator("date")
    @classmethod
    def _not_future(cls, value: dt.date) -> dt.date:
        if value > clock.today(clock.WIT):  # no Indonesian date is later than WIT's
            raise ValueError("the deed date cannot be in the future")
        return value

    def command(self) -> commands.Deed:
        return commands.Deed(number=self.number, date=self.date, notary=self.notary)


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
    registered_at: PastDatetime | None = Field(
        default=None,
        description="When the KKMP was registered, for records entered after the fact (default: now)",
    )

    def command(self) -> commands.RegisterCooperative:
        return commands.RegisterCooperative(
            name=self.name,
            kelurahan_code=self.kelurahan_code,
            formation=self.formation,
            deed=self.deed.command() if self.deed else None,
            business_units=list(self.business_units),
            address=self.address,
            phone=self.phone,
            registered_at=self.registered_at,
        )


class CooperativeBatch(Strict):
    cooperatives: list[CooperativeCreate] = Field(min_length=1, max_length=5000)


class CooperativeUpdate(Strict):
    name: Name | None = None
    formation: Literal["new", "revitalized"] | None = None
    deed: Deed | None = None
    business_units: list[BusinessUnit] | None = Field(default=None, max_length=len(BUSINESS_UNITS))
    address: Annotated[str, StringConstraints(max_length=300)] | None = None
    phone: Annotated[str, StringConstraints(max_length=40)] | None = None
    status: Status | None = None
    status_reason: Annotated[str, StringConstraints(max_length=500)] | None = None

    def command(self, cooperative_id: str) -> commands.UpdateCooperative:
        """Only the fields the caller sent: a field sent as null is not the same as one left out."""
        changes = {name: getattr(self, name) for name in self.model_fields_set}
        if self.deed is not None:
            changes["deed"] = self.deed.command()
        return commands.UpdateCooperative(cooperative_id, changes)


class BoardMemberIn(Strict):
    name: Name
    position: Annotated[
        BoardPosition,
        BeforeValidator(lambda v: normalise_board_position(v) if isinstance(v, str) else v),
    ]
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

    def command(self, cooperative_id: str) -> commands.ReplaceBoard:
        return commands.ReplaceBoard(
            cooperative_id,
            [
                commands.BoardMember(name=m.name, position=m.position, phone=m.phone, since=m.since)
                for m in self.members
            ],
        )


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
    created_at: UtcDatetime
    updated_at: UtcDatetime


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
    changed_by_username: str | None = None
    changed_at: UtcDatetime


class Business(Strict):
    sector: Annotated[str, StringConstraints(min_length=2, max_length=100), TRIMMED]
    products: list[Annotated[str, StringConstraints(min_length=1, max_length=100), TRIMMED]] = Field(
        default_factory=list, max_length=50
    )


class MemberCreate(Strict):
    name: Name
    kind: Literal["resident", "umkm"]
    business: Business | None = None
    joined_at: PastDatetime | None = Field(
        default=None, description="When the member joined, for registers entered after the fact"
    )

    def command(self) -> commands.NewMember:
        business = self.business
        return commands.NewMember(
            name=self.name,
            kind=self.kind,
            business=commands.Business(business.sector, list(business.products)) if business else None,
            joined_at=self.joined_at,
        )


class MemberBatch(Strict):
    members: list[MemberCreate] = Field(min_length=1, max_length=1000)


class MemberOut(BaseModel):
    id: str
    cooperative_id: str
    name: str
    kind: str
    business: Business | None = None
    joined_at: UtcDatetime


class MemberBatchOut(BaseModel):
    items: list[MemberOut]
    member_count: int


class MemberList(BaseModel):
    items: list[MemberOut]
    total: int


class PotentialCreate(Strict):
    sector: Annotated[str, StringConstraints(min_length=2, max_length=100), TRIMMED]
    description: Annotated[str, StringConstraints(min_length=3, max_length=2000), TRIMMED]
    priority: int = Field(ge=1, le=5, description="1 = highest")

    def command(self, kelurahan_code: str) -> commands.MapPotential:
        return commands.MapPotential(kelurahan_code, self.sector, self.description, self.priority)


class PotentialOut(BaseModel):
    id: str
    kelurahan_code: str
    kecamatan_code: str | None = None
    cooperative_id: str | None = None
    sector: str
    description: str
    priority: int
    created_at: UtcDatetime


class PotentialList(BaseModel):
    items: list[PotentialOut]
    total: int


class TrainingCreate(Strict):
    title: Name
    topic: Annotated[str, StringConstraints(min_length=2, max_length=100), TRIMMED]
    description: Annotated[str, StringConstraints(max_length=2000)] | None = None
    kecamatan_code: KecamatanCode | None = None
    starts_on: date
    ends_on: date | None = None
    location: Annotated[str, StringConstraints(max_length=200)] | None = None

    def command(self) -> commands.PlanTraining:
        return commands.PlanTraining(**self.model_dump())


class ParticipantIn(Strict):
    cooperative_id: Annotated[str, StringConstraints(min_length=1, max_length=64), TRIMMED]
    name: Name
    role: Annotated[str, StringConstraints(max_length=40)] | None = None


class ParticipantsIn(Strict):
    participants: list[ParticipantIn] = Field(min_length=1, max_length=500)

    def command(self, training_id: str) -> commands.RegisterParticipants:
        return commands.RegisterParticipants(
            training_id, [commands.Participant(p.cooperative_id, p.name, p.role) for p in self.participants]
        )


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
    completed_at: UtcDatetime | None = None
    participants: list[ParticipantOut] = []


class TrainingComplete(Strict):
    attended: list[Annotated[str, StringConstraints(max_length=64)]] | None = Field(
        default=None, max_length=5000, description="Participant ids who attended (default: all)"
    )
    completed_at: PastDatetime | None = Field(
        default=None, description="When it ended, for trainings recorded after the fact (default: now)"
    )

    def command(self, training_id: str) -> commands.CompleteTraining:
        return commands.CompleteTraining(training_id, self.attended, self.completed_at)


Username = Annotated[
    str,
    StringConstraints(to_lower=True, pattern=r"^[a-zA-Z0-9_.\-]{3,100}$"),
]
Password = Annotated[str, StringConstraints(min_length=8, max_length=200)]


class UserCreate(Strict):
    """Usernames are case-insensitive: they are stored in lower case and looked up that way."""

    username: Username
    password: Password
    role: Role
    cooperative_id: Annotated[str, StringConstraints(max_length=64)] | None = None
    supplier_id: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    kecamatan_codes: list[KecamatanCode] = Field(default_factory=list, max_length=100)
    full_name: Annotated[str, StringConstraints(max_length=200)] | None = None
    email: Annotated[str, StringConstraints(max_length=200, pattern=r"^[^@\s]+@[^@\s]+$")] | None = None
    supervisor: bool = False

    def command(self) -> commands.CreateUser:
        return commands.CreateUser(**self.model_dump())


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
    created_at: UtcDatetime


class PasswordChange(Strict):
    current_password: Annotated[str, StringConstraints(max_length=200)]
    new_password: Password


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
