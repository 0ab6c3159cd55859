"""What every sourcing use case shares: the context it runs in, time, ids and scope checks."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from kkmp_shared import clock
from kkmp_shared.auth import Principal
from kkmp_shared.directory import CooperativeDirectory
from kkmp_shared.errors import ApiError, forbidden, unprocessable

from sourcing.adapters.reference import Reference
from sourcing.domain.commodities import Commodity
from sourcing.settings import SourcingSettings

# Surabaya keeps Western Indonesia Time (UTC+7, no daylight saving): dates such as `needed_by` are local.
WIB = timezone(timedelta(hours=7), "WIB")
# Clocks of callers drift; a timestamp this far ahead is still taken as "now".
CLOCK_SKEW = timedelta(minutes=5)


@dataclass
class Context:
    """What use cases need besides their unit of work: settings, reference data, the directory."""

    settings: SourcingSettings
    reference: Reference
    directory: CooperativeDirectory

    def commodity(self, code: str, unit: str | None = None) -> Commodity:
        """The catalogue's commodity, or a bare one for a code inventory knows and the CSV does not."""
        return self.reference.commodity(code) or Commodity(code=code, name=code, unit=unit or "unit")


def now() -> datetime:
    return clock.now()


def local_date(moment: datetime) -> date:
    return moment.astimezone(WIB).date()


def new_id() -> str:
    return str(uuid.uuid4())


def dec(value: Any) -> Decimal:
    """An exact decimal from whatever the database hands back (SQLite may give floats)."""
    if value is None:
        return Decimal(0)
    if isinstance(value, Decimal):
        return value
    return Decimal(str(value)).quantize(Decimal("0.001"))


def is_staff(principal: Principal) -> bool:
    return principal.role in ("admin", "officer")


def require_staff(principal: Principal) -> None:
    if not is_staff(principal):
        raise forbidden("Only Dinkopdag officers and administrators may do this.")


def require_staff_for(principal: Principal, kecamatan_codes: Sequence[str]) -> None:
    """An officer acts only within its kecamatan; an administrator everywhere."""
    require_staff(principal)
    if not all(principal.covers_kecamatan(k) for k in kecamatan_codes):
        raise forbidden("This is outside the kecamatan you oversee.")


def check_backdating(
    principal: Principal, field: str, moment: datetime | None, earliest: datetime | None = None
) -> datetime:
    """A caller-given time: administrators only (history imports and the demo seed), never ahead of now."""
    current = now()
    if moment is None:
        return current
    if principal.role != "admin":
        raise forbidden(f"Only an administrator may set {field}.")
    if moment.tzinfo is None:
        raise unprocessable(field, f"{field} must carry a time zone.")
    if moment > current + CLOCK_SKEW:
        raise unprocessable(field, f"{field} cannot be in the future.")
    if earliest is not None and moment < earliest:
        raise unprocessable(field, f"{field} cannot be before {earliest.isoformat()}.")
    return min(moment, current)


def unknown(field: str, what: str, value: str, code: str) -> ApiError:
    return unprocessable(field, f"Unknown {what} {value!r}.", code)


def as_utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def check_whole_units(commodity: Commodity | None, field: str, quantity: Decimal | None) -> None:
    """LPG cylinders, boxes and cans change hands whole: 2.5 tabung is a typing error, not an order."""
    if (
        commodity is not None
        and quantity is not None
        and commodity.discrete
        and quantity != quantity.to_integral()
    ):
        raise unprocessable(
            field, f"{commodity.name} is counted in whole {commodity.unit}.", "whole_units_only"
        )


def hours_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds() / 3600, 2)
