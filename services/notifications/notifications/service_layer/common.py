"""Small helpers every use case shares: clock, ids, UTC normalisation."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime

from kkmp_shared import clock
from kkmp_shared.auth import Principal
from kkmp_shared.errors import forbidden
from kkmp_shared.unit_of_work import UnitOfWork

# `Platform.unit_of_work`: for the work that needs transactions of its own (the delivery worker's
# claims and recordings, the scheduled jobs), injected rather than reached for.
UnitOfWorkFactory = Callable[[], AbstractAsyncContextManager[UnitOfWork]]

# Ids made up for things that are not events on the bus (escalations, digests, announcements) are
# derived from what they are about, so doing the same thing twice yields the same id (and no copy).
NAMESPACE = uuid.UUID("6a1f6a52-7d1b-4f0e-9c39-3b7c4b0b5e10")


def now() -> datetime:
    return clock.now()


def new_id() -> str:
    return str(uuid.uuid4())


def derived_id(*parts: str) -> str:
    return str(uuid.uuid5(NAMESPACE, "|".join(parts)))


def within_own_scope(principal: Principal, codes: list[str] | None, refusal: str) -> list[str] | None:
    """The kecamatan an act covers: an officer acts within their own scope, by default all of it
    (forbidden with `refusal` beyond it); others as asked (None: the whole city)."""
    own = principal.kecamatan_filter()
    if own is None:
        return codes
    if codes is None:
        return sorted(own)
    if not set(codes) <= set(own):
        raise forbidden(refusal)
    return codes
