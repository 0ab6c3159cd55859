"""The refresher: keeps the derived figures (health per cooperative, counts per kecamatan and for the
city) caught up with the marks the consumers leave in `refresh_queue`, a chunk per transaction, and
announces health level changes through the outbox in the same transaction.

Every refresher transaction first locks the lease row, so across replicas one at a time claims marks
(work done once, a change announced once); the lease's holder runs the scheduled work, and another
replica takes over `lease_s` after the holder stops renewing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from kkmp_shared import clock
from kkmp_shared.bootstrap import Platform
from kkmp_shared.events.contracts import CooperativeHealthChanged
from kkmp_shared.unit_of_work import UnitOfWork
from sqlalchemy.ext.asyncio import AsyncSession

from reporting.adapters import derived_figures, figures, orm
from reporting.adapters import refresh_store as marks
from reporting.domain.health import HealthPolicy, assess_health
from reporting.domain.periods import DueRule, Period, local_date

log = logging.getLogger("kkmp.reporting.refresh")


@dataclass
class RefreshResult:
    cooperatives: int = 0
    level_changes: int = 0
    kecamatan: int = 0
    city: bool = False
    seconds: float = 0.0


def factors_json(assessment: Any) -> list[dict[str, Any]]:
    return [
        {"name": f.name, "value": f.value, "weight": f.weight, "note": f.note} for f in assessment.factors
    ]


class Refresher:
    def __init__(
        self,
        platform: Platform,
        *,
        policy: HealthPolicy,
        due: DueRule,
        tz: tzinfo,
        chunk: int = 2000,
        lease_s: float = 15.0,
        holder: str | None = None,
    ) -> None:
        self.platform = platform
        self.lease_s = lease_s
        # Who this refresher is, in the lease row: readable in an operator's query, unique per start.
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.policy = policy
        self.due = due
        self.tz = tz
        self.chunk = chunk
        self.health = figures.HealthContext(policy=policy, due=due, tz=tz)
        self.last_completed_at: datetime | None = None
        self._period: Period | None = None
        # One cycle at a time in this process (the lease row does it across replicas); a rebuild holds
        # it so no cycle computed from the old rows can land after the rebuilt ones.
        self.lock = asyncio.Lock()

    # --- the lease ----------------------------------------------------------------------------

    async def take_turn(self, uow: UnitOfWork) -> None:
        """First statement of every refresher transaction: lock the lease row, which serialises the
        refresher transactions of every replica (see the module's docstring). The holder renews its
        lease here too, so a long recompute keeps it."""
        row = await marks.lock_lease(uow.session)
        if row is not None and row.holder == self.holder:
            await marks.set_lease(uow.session, expires_at=clock.system_seconds() + self.lease_s)

    async def hold_lease(self) -> bool:
        """Take or renew the lease; True when this refresher holds it (then it runs the scheduled
        work until the lease is renewed again or `lease_s` has passed)."""
        async with self.platform.unit_of_work() as uow:
            row = await marks.lock_lease(uow.session)
            now = clock.system_seconds()
            if row is None:
                raise RuntimeError("the refresh_lease row is missing: is the reporting database migrated?")
            if row.holder != self.holder and row.expires_at > now:
                return False
            if row.holder != self.holder:
                log.info("refresher lease taken by %s (was %s)", self.holder, row.holder or "nobody")
            await marks.set_lease(uow.session, holder=self.holder, expires_at=now + self.lease_s)
        return True

    async def release_lease(self) -> None:
        """Give the lease up at shutdown, so another replica takes over without waiting it out."""
        async with self.platform.unit_of_work() as uow:
            await marks.release_lease(uow.session, self.holder)

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[UnitOfWork]:
        """One refresher transaction: planned per chunk, serialised with every replica's by the lease."""
        async with self.platform.unit_of_work() as uow:
            await marks.plan_per_chunk(uow.session)
            await self.take_turn(uow)
            yield uow

    # --- health -------------------------------------------------------------------------------

    async def assess(
        self, session: AsyncSession, ids: list[str], now: datetime, id_range: tuple[str, str] | None = None
    ) -> dict[str, tuple[figures.CoopIdentity, Any]]:
        coops = await figures.cooperatives(session, ids, id_range)
        inputs = await figures.health_inputs(session, coops, now, self.health, id_range)
        return {c.id: (c, assess_health(inputs[c.id], self.policy)) for c in coops}

    async def recompute_health(
        self, uow: UnitOfWork, ids: list[str], now: datetime, id_range: tuple[str, str] | None = None
    ) -> tuple[set[str], int]:
        """Store the health of these cooperatives (`id_range`: they are exactly the directory's ids in
        that range); returns the kecamatan whose level counts changed and how many level changes were
        announced."""
        assessed = await self.assess(uow.session, ids, now, id_range)
        if not assessed:
            return set(), 0
        previous = await derived_figures.health_levels(uow.session, list(assessed))
        rows, events, touched = [], [], set()
        for coop_id, (coop, assessment) in assessed.items():
            before = previous.get(coop_id)
            changed = before is None or before.level != assessment.level
            rows.append(
                {
                    "cooperative_id": coop_id,
                    "kecamatan_code": coop.kecamatan_code,
                    "score": assessment.score,
                    "level": assessment.level,
                    "factors": factors_json(assessment),
                    "computed_at": now,
                    "level_since": before.level_since if before is not None and not changed else now,
                }
            )
            if changed:
                touched.add(coop.kecamatan_code)
            # The first assessment of a new cooperative is not a change of its health: only a move
            # between levels is announced (otherwise every registration would alert the officers).
            if before is not None and changed:
                events.append(
                    CooperativeHealthChanged(
                        cooperative_id=coop_id,
                        kelurahan_code=coop.kelurahan_code,
                        kecamatan_code=coop.kecamatan_code,
                        cooperative_name=coop.name,
                        old_level=before.level,
                        new_level=assessment.level,
                        score=assessment.score,
                        changed_at=now,
                    )
                )
        rows.sort(key=lambda row: row["cooperative_id"])  # one lock order for every writer
        await derived_figures.save_health(uow.session, rows)
        if events:
            await uow.publish_many(events)  # type: ignore[arg-type]
        return touched, len(events)

    # --- kecamatan and city -------------------------------------------------------------------

    def current_period(self, now: datetime) -> Period:
        """Timeliness on the dashboards is judged on the latest period whose due date has passed."""
        return self.due.latest_passed(local_date(now, self.tz))

    async def refresh_kecamatan(self, uow: UnitOfWork, codes: list[str], now: datetime) -> bool:
        """Recompute these kecamatan rows; True when a response-time figure changed (the city median
        then needs recomputing too)."""
        period = self.current_period(now)
        counts = await figures.kecamatan_counts(uow.session, codes, period, self.tz, self.due)
        before = await derived_figures.response_figures(uow.session, list(counts))
        rows = [{**c.as_row(code), "refreshed_at": now} for code, c in sorted(counts.items())]
        if not rows:
            return False
        await derived_figures.save_kecamatan(uow.session, rows)
        return any(
            before.get(code) != (c.needs_responded, c.median_response_seconds) for code, c in counts.items()
        )

    async def refresh_city(self, uow: UnitOfWork, now: datetime, *, median_changed: bool) -> None:
        total = figures.sum_counts(await derived_figures.kecamatan_rows(uow.session))
        total.reports_period = str(self.current_period(now))
        existing = await derived_figures.city_median(uow.session)
        if median_changed or existing is None:
            total.median_response_seconds = (await figures.response_medians(uow.session, None, []))[None]
        else:
            total.median_response_seconds = existing[0]
        await derived_figures.save_kecamatan(uow.session, [{**total.as_row(orm.ALL), "refreshed_at": now}])

    # --- the cycle ----------------------------------------------------------------------------

    async def run_once(self, now: datetime | None = None) -> RefreshResult:
        """Work off every mark queued so far (in chunks, one transaction each)."""
        async with self.lock:
            return await self.run_once_locked(now)

    async def run_once_locked(self, now: datetime | None = None) -> RefreshResult:
        started = time.perf_counter()
        now = now or clock.now()
        result = RefreshResult()
        period = self.current_period(now)
        if period != self._period:
            # A due date passed (or the service just started): every kecamatan's timeliness moves.
            async with self.turn() as uow:
                await marks.mark_all(uow.session, cooperatives=False, kecamatan=True)
            self._period = period
        async with self.platform.unit_of_work() as uow:
            up_to = await marks.last_mark(uow.session)
        while True:
            async with self.turn() as uow:
                ids = await marks.claim(uow.session, "cooperative", up_to, self.chunk)
                if not ids:
                    break
                touched, changes = await self.recompute_health(uow, ids, now)
                await marks.mark_kecamatan(uow.session, touched)
            result.cooperatives += len(ids)
            result.level_changes += changes
        async with self.platform.unit_of_work() as uow:
            up_to = await marks.last_mark(uow.session)  # with the kecamatan the health changes just marked
        median_changed = False
        while True:
            async with self.turn() as uow:
                codes = await marks.claim(uow.session, "kecamatan", up_to, self.chunk)
                if not codes:
                    break
                median_changed |= await self.refresh_kecamatan(uow, codes, now)
            result.kecamatan += len(codes)
        if result.kecamatan:
            async with self.turn() as uow:
                await self.refresh_city(uow, now, median_changed=median_changed)
            result.city = True
        self.last_completed_at = now
        result.seconds = time.perf_counter() - started
        if result.cooperatives or result.kecamatan:
            log.info(
                "refreshed %d cooperatives (%d level changes), %d kecamatan in %.3fs",
                result.cooperatives,
                result.level_changes,
                result.kecamatan,
                result.seconds,
            )
        return result

    async def recompute_all_health(
        self, now: datetime | None = None, *, locked: bool = False
    ) -> RefreshResult:
        """Every cooperative's health (the schedule: time alone moves the windows), walking the
        directory in id ranges (an index range scan per chunk, no list of ids to bind), then the
        kecamatan whose counts moved. Holds the cycle lock chunk by chunk, so event-driven refreshes
        interleave; `locked` when the caller holds it already (a rebuild)."""
        now = now or clock.now()
        result = RefreshResult()
        started = time.perf_counter()
        after = ""
        while True:
            async with contextlib.AsyncExitStack() as stack:
                if not locked:
                    await stack.enter_async_context(self.lock)
                async with self.turn() as uow:
                    ids = await marks.cooperative_ids_after(uow.session, after, self.chunk)
                    if not ids:
                        break
                    touched, changes = await self.recompute_health(uow, ids, now, id_range=(ids[0], ids[-1]))
                    await marks.mark_kecamatan(uow.session, touched)
            after = ids[-1]
            result.cooperatives += len(ids)
            result.level_changes += changes
        rest = await (self.run_once_locked(now) if locked else self.run_once(now))
        result.kecamatan, result.city = rest.kecamatan, rest.city
        result.seconds = time.perf_counter() - started
        return result
