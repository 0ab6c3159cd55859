"""What the registry's use cases are asked to do: plain values, already parsed and validated by the
entrypoint that received them (HTTP form, JSON body, import file)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

Formation = Literal["new", "revitalized"]
Role = Literal["admin", "officer", "coop_manager", "supplier", "service"]


@dataclass(frozen=True)
class Deed:
    number: str
    date: date
    notary: str


@dataclass(frozen=True)
class RegisterCooperative:
    name: str
    kelurahan_code: str
    formation: Formation
    deed: Deed | None = None
    business_units: Sequence[str] = ("sembako",)
    address: str | None = None
    phone: str | None = None
    registered_at: datetime | None = None


@dataclass(frozen=True)
class ImportedRow:
    """One row of an import file, numbered as a spreadsheet user sees it (the header is row 1)."""

    row: int
    cooperative: RegisterCooperative


@dataclass(frozen=True)
class UpdateCooperative:
    """`changes` holds only the fields the caller sent (a `None` among them clears or is refused);
    `deed` in it is a `Deed`."""

    cooperative_id: str
    changes: Mapping[str, Any]


@dataclass(frozen=True)
class BoardMember:
    name: str
    position: str
    phone: str | None = None
    since: date | None = None


@dataclass(frozen=True)
class ReplaceBoard:
    cooperative_id: str
    members: Sequence[BoardMember]


@dataclass(frozen=True)
class Business:
    sector: str
    products: Sequence[str] = ()


@dataclass(frozen=True)
class NewMember:
    name: str
    kind: str
    business: Business | None = None
    joined_at: datetime | None = None


@dataclass(frozen=True)
class AddMembers:
    """`batch`: the members came as a list (error fields name their index)."""

    cooperative_id: str
    members: Sequence[NewMember]
    batch: bool = False


@dataclass(frozen=True)
class MapPotential:
    kelurahan_code: str
    sector: str
    description: str
    priority: int


@dataclass(frozen=True)
class PlanTraining:
    title: str
    topic: str
    starts_on: date
    description: str | None = None
    kecamatan_code: str | None = None
    ends_on: date | None = None
    location: str | None = None


@dataclass(frozen=True)
class Participant:
    cooperative_id: str
    name: str
    role: str | None = None


@dataclass(frozen=True)
class RegisterParticipants:
    training_id: str
    participants: Sequence[Participant]


@dataclass(frozen=True)
class CompleteTraining:
    """`attended`: the participant ids who attended (`None`: all of them)."""

    training_id: str
    attended: Sequence[str] | None = None
    completed_at: datetime | None = None


@dataclass(frozen=True)
class CreateUser:
    username: str
    password: str
    role: Role
    cooperative_id: str | None = None
    supplier_id: str | None = None
    kecamatan_codes: Sequence[str] = field(default_factory=list)
    full_name: str | None = None
    email: str | None = None
    supervisor: bool = False


@dataclass(frozen=True)
class ChangePassword:
    """`login`: the name the caller logged in with, the key its wrong guesses are counted under."""

    user_id: str
    login: str
    current_password: str
    new_password: str


@dataclass(frozen=True)
class PasswordGrant:
    username: str
    password: str
    client_ip: str


@dataclass(frozen=True)
class ClientCredentialsGrant:
    client_id: str | None
    client_secret: str | None
    client_ip: str
