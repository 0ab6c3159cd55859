"""What the Dinkopdag dashboard shows, computed from the services' answers. Pure, no I/O.

The map's colours and legend, the kelurahan points, the chart series and the "needs attention" list are
decided here so they can be tested without a browser or a service.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from kkmp_shared import clock
from portal.domain import format as fmt
from portal.domain.geo import (
    HEALTH_RAMP,
    NO_DATA,
    STALLED_RAMP,
    Projection,
    SvgMap,
    health_colour,
    nice_breaks,
    stalled_colour,
)

# A need counts as answered on time when an officer first acts on it within this many hours.
RESPONSE_TARGET_HOURS = 48

MAP_MODES = {"kesehatan": "Kesehatan koperasi", "macet": "Nilai stok macet"}


def _num(value: Any) -> float | None:
    try:
        return None if value is None or isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        return None


def dig(data: Mapping[str, Any] | None, *path: str, default: Any = None) -> Any:
    """``dig(d, "stock", "stalled_value")`` without a KeyError on any missing level."""
    current: Any = data
    for key in path:
        if not isinstance(current, Mapping) or key not in current:
            return default
        current = current[key]
    return current


def kecamatan_code_of(row: Mapping[str, Any]) -> str:
    return str(row.get("kecamatan_code") or row.get("code") or "")


@dataclass(frozen=True)
class KecamatanFigures:
    code: str
    total: int
    aktif: int
    kurang_aktif: int
    tidak_aktif: int
    stalled_value: float
    stalled_items: int
    open_needs: int
    on_time_rate: float | None

    @property
    def active_share(self) -> float | None:
        return self.aktif / self.total if self.total else None


def kecamatan_figures(rows: Iterable[Mapping[str, Any]]) -> dict[str, KecamatanFigures]:
    """Reporting's ``GET /kecamatan`` rows by kecamatan code (same shape as ``/dashboard/summary``)."""
    result: dict[str, KecamatanFigures] = {}
    for row in rows:
        code = kecamatan_code_of(row)
        if not code:
            continue
        by_health = dig(row, "cooperatives", "by_health", default={}) or {}
        result[code] = KecamatanFigures(
            code=code,
            total=int(_num(dig(row, "cooperatives", "total")) or 0),
            aktif=int(_num(by_health.get("aktif")) or 0),
            kurang_aktif=int(_num(by_health.get("kurang_aktif")) or 0),
            tidak_aktif=int(_num(by_health.get("tidak_aktif")) or 0),
            stalled_value=_num(dig(row, "stock", "stalled_value")) or 0.0,
            stalled_items=int(_num(dig(row, "stock", "stalled_items")) or 0),
            open_needs=int(_num(dig(row, "needs", "open")) or 0),
            on_time_rate=_num(dig(row, "reports", "on_time_rate")),
        )
    return result


@dataclass(frozen=True)
class MapArea:
    code: str
    name: str
    path: str
    fill: str
    title: str
    label_x: float
    label_y: float


@dataclass(frozen=True)
class MapPoint:
    x: float
    y: float
    title: str
    href: str | None
    css: str  # level-aktif, level-kurang_aktif, level-tidak_aktif, has-coop, no-coop


@dataclass(frozen=True)
class LegendEntry:
    colour: str
    text: str


@dataclass
class MapView:
    view_box: str
    mode: str
    areas: list[MapArea]
    points: list[MapPoint] = field(default_factory=list)
    legend: list[LegendEntry] = field(default_factory=list)


def colour_map(city: SvgMap, figures: Mapping[str, KecamatanFigures], mode: str) -> MapView:
    """The kecamatan shapes filled by health (share of cooperatives ``aktif``) or by stalled-stock value."""
    mode = mode if mode in MAP_MODES else "kesehatan"
    areas: list[MapArea] = []
    legend: list[LegendEntry]
    if mode == "macet":
        breaks = nice_breaks(max((f.stalled_value for f in figures.values()), default=0.0))
        for shape in city.shapes:
            fig = figures.get(shape.code)
            value = fig.stalled_value if fig else None
            title = (
                f"Kec. {shape.name}: stok macet {fmt.rupiah(value)}"
                if fig
                else f"Kec. {shape.name}: belum ada data"
            )
            areas.append(
                MapArea(
                    shape.code,
                    shape.name,
                    shape.path,
                    stalled_colour(value, breaks),
                    title,
                    shape.label_x,
                    shape.label_y,
                )
            )
        legend = [LegendEntry(STALLED_RAMP[0], "Tidak ada")]
        lower = 0.0
        for colour, upper in zip(STALLED_RAMP[1:], breaks, strict=False):
            legend.append(LegendEntry(colour, f"{fmt.rupiah_ringkas(lower)}–{fmt.rupiah_ringkas(upper)}"))
            lower = upper
    else:
        for shape in city.shapes:
            fig = figures.get(shape.code)
            share = fig.active_share if fig else None
            if fig and fig.total:
                title = (
                    f"Kec. {shape.name}: {fig.aktif} dari {fig.total} koperasi aktif "
                    f"({fmt.persen(share, 0)}), {fig.tidak_aktif} tidak aktif"
                )
            else:
                title = f"Kec. {shape.name}: belum ada data"
            areas.append(
                MapArea(
                    shape.code,
                    shape.name,
                    shape.path,
                    health_colour(share),
                    title,
                    shape.label_x,
                    shape.label_y,
                )
            )
        legend = [
            LegendEntry(HEALTH_RAMP[0], "≤20% aktif"),
            LegendEntry(HEALTH_RAMP[1], "21–40%"),
            LegendEntry(HEALTH_RAMP[2], "41–60%"),
            LegendEntry(HEALTH_RAMP[3], "61–80%"),
            LegendEntry(HEALTH_RAMP[4], ">80% aktif"),
        ]
    legend.append(LegendEntry(NO_DATA, "Belum ada data"))
    return MapView(city.view_box, mode, areas, [], legend)


def cooperative_points(
    projection: Projection,
    kelurahan: Iterable[tuple[str, str, float, float]],
    cooperatives: Mapping[str, Mapping[str, Any]],
    levels: Mapping[str, str],
) -> list[MapPoint]:
    """One point per kelurahan ``(code, name, lat, lon)``: linked to its KKMP when one is registered,
    coloured by the KKMP's health level when reporting knows it (``levels`` keyed by cooperative id)."""
    points: list[MapPoint] = []
    for code, name, lat, lon in kelurahan:
        x, y = projection.point(lon, lat)
        coop = cooperatives.get(code)
        if coop is None:
            points.append(
                MapPoint(
                    round(x, 1), round(y, 1), f"Kel. {name}: belum ada koperasi terdaftar", None, "no-coop"
                )
            )
            continue
        coop_id = str(coop.get("id"))
        level = levels.get(coop_id)
        status = f" – {fmt.label(fmt.HEALTH_LEVEL, level)}" if level else ""
        css = f"level-{level}" if level in fmt.HEALTH_LEVEL else "has-coop"
        points.append(
            MapPoint(
                round(x, 1),
                round(y, 1),
                f"{coop.get('name') or 'KKMP'} (Kel. {name}){status}",
                f"/koperasi/{coop_id}",
                css,
            )
        )
    return points


# --- charts -------------------------------------------------------------------------------------------


def week_start(moment: datetime) -> datetime:
    """Monday 00:00 Jakarta time of the week containing ``moment``."""
    local = moment.astimezone(fmt.JAKARTA)
    monday = local - timedelta(days=local.weekday())
    return monday.replace(hour=0, minute=0, second=0, microsecond=0)


def week_label(start: datetime) -> str:
    return f"{start.day} {fmt.MONTHS_SHORT[start.month - 1]}"


def need_created_at(need: Mapping[str, Any]) -> datetime | None:
    return fmt.parse_timestamp(need.get("created_at") or need.get("submitted_at"))


def need_first_response_at(need: Mapping[str, Any]) -> datetime | None:
    """When an officer first acted on a need: ``responded_at`` (sourcing's first answer) or
    ``acknowledged_at``, else the earliest non-open status in its
    history (``history``/``status_history``/``events``: ``[{"status", "at"|"changed_at"|"created_at"}]``)."""
    for key in ("responded_at", "first_response_at", "acknowledged_at"):
        moment = fmt.parse_timestamp(need.get(key))
        if moment:
            return moment
    history = need.get("history") or need.get("status_history") or need.get("events") or []
    moments = []
    for entry in history if isinstance(history, list) else []:
        if not isinstance(entry, Mapping):
            continue
        status = entry.get("status") or entry.get("to_status") or entry.get("to")
        if status and status != "open":
            moment = fmt.parse_timestamp(
                entry.get("at") or entry.get("changed_at") or entry.get("created_at")
            )
            if moment:
                moments.append(moment)
    if moments:
        return min(moments)
    if need.get("status") not in (None, "open"):
        return fmt.parse_timestamp(need.get("status_changed_at") or need.get("updated_at"))
    return None


@dataclass(frozen=True)
class Series:
    labels: list[str]
    values: list[float | None]


def needs_on_time_series(
    needs: Iterable[Mapping[str, Any]],
    now: datetime,
    weeks: int = 8,
    target_hours: int = RESPONSE_TARGET_HOURS,
) -> Series:
    """Per week of submission, the share (percent) of needs first answered within ``target_hours``.

    A need still unanswered counts as late once its target has passed; one still inside its target is
    left out (not yet decided). A week with nothing decided has no value (a gap, not a zero).
    """
    first_week = week_start(now) - timedelta(weeks=weeks - 1)
    decided: dict[datetime, list[bool]] = defaultdict(list)
    for need in needs:
        created = need_created_at(need)
        if created is None:
            continue
        start = week_start(created)
        if start < first_week:
            continue
        deadline = created + timedelta(hours=target_hours)
        answered = need_first_response_at(need)
        if answered is not None:
            decided[start].append(answered <= deadline)
        elif now > deadline:
            decided[start].append(False)
    labels, values = [], []
    for i in range(weeks):
        start = first_week + timedelta(weeks=i)
        labels.append(week_label(start))
        outcomes = decided.get(start)
        values.append(round(100 * sum(outcomes) / len(outcomes), 1) if outcomes else None)
    return Series(labels, values)


def stalled_by_kecamatan(
    figures: Mapping[str, KecamatanFigures], names: Mapping[str, str], top: int = 10
) -> Series:
    """The kecamatan with the most stalled-stock value, largest first."""
    ranked = sorted(
        (f for f in figures.values() if f.stalled_value > 0), key=lambda f: f.stalled_value, reverse=True
    )
    ranked = ranked[:top]
    return Series([names.get(f.code, f.code) for f in ranked], [round(f.stalled_value) for f in ranked])


def weekly_series(payload: Any, key: str) -> Series | None:
    """A weekly series from reporting's timeseries answer.

    Accepts ``{key: [{"week"|"week_start", "value"}]}`` or ``{"weeks": [{"week_start", key: v}]}``;
    None when the series is not there."""
    rows = None
    if isinstance(payload, Mapping):
        if isinstance(payload.get(key), list):
            rows = [
                (r.get("week_start") or r.get("week"), r.get("value"))
                for r in payload[key]
                if isinstance(r, Mapping)
            ]
        elif isinstance(payload.get("weeks"), list):
            rows = [
                (r.get("week_start") or r.get("week"), r.get(key))
                for r in payload["weeks"]
                if isinstance(r, Mapping)
            ]
    if not rows:
        return None
    labels, values = [], []
    for week, value in rows:
        # A bare date is a calendar day (no zone shift); a timestamp is shown in Jakarta time.
        text = fmt.tanggal(week, short=True) if isinstance(week, str) else fmt.EMPTY
        labels.append(text.rsplit(" ", 1)[0] if text not in (fmt.EMPTY, week) else str(week))
        values.append(_num(value))
    return Series(labels, values)


# --- lists --------------------------------------------------------------------------------------------


@dataclass
class Attention:
    cooperative_id: str
    reasons: list[str] = field(default_factory=list)
    weight: float = 0.0


def cooperatives_needing_attention(
    health: Iterable[Mapping[str, Any]],
    stalled: Iterable[Mapping[str, Any]],
    open_needs: Iterable[Mapping[str, Any]],
    now: datetime | None = None,
    limit: int = 10,
) -> list[Attention]:
    """Cooperatives to look at first: not active (by reporting's health level), with stalled stock, or
    with a need left unanswered past the response target. Ordered by how much is wrong."""
    now = now or clock.now()
    found: dict[str, Attention] = {}

    def entry(coop_id: Any) -> Attention:
        key = str(coop_id)
        return found.setdefault(key, Attention(key))

    for row in health:
        coop_id = row.get("cooperative_id") or row.get("id")
        level = row.get("level") or dig(row, "health", "level")
        if coop_id is None or level not in ("tidak_aktif", "kurang_aktif"):
            continue
        item = entry(coop_id)
        item.reasons.append(f"Kesehatan: {fmt.label(fmt.HEALTH_LEVEL, level)}")
        item.weight += 3 if level == "tidak_aktif" else 1.5
    stalled_value: dict[str, float] = defaultdict(float)
    stalled_count: dict[str, int] = defaultdict(int)
    for row in stalled:
        coop_id = row.get("cooperative_id") or dig(row, "cooperative", "id")
        if coop_id is None:
            continue
        stalled_value[str(coop_id)] += _num(row.get("value")) or 0.0
        stalled_count[str(coop_id)] += 1
    for coop_id, value in stalled_value.items():
        item = entry(coop_id)
        item.reasons.append(f"{stalled_count[coop_id]} stok macet ({fmt.rupiah(value)})")
        item.weight += 1 + min(value / 5_000_000, 2)
    for need in open_needs:
        created = need_created_at(need)
        coop_id = need.get("cooperative_id")
        if coop_id is None or created is None:
            continue
        waited = (now - created).total_seconds() / 3600
        if waited > RESPONSE_TARGET_HOURS:
            item = entry(coop_id)
            item.reasons.append(f"Kebutuhan belum ditanggapi {fmt.durasi_jam(waited)}")
            item.weight += 1 + min(waited / 240, 2)
    ranked = sorted(found.values(), key=lambda a: a.weight, reverse=True)
    return ranked[:limit]


def oldest_first(needs: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    far_future = datetime.max.replace(tzinfo=UTC)
    return sorted(needs, key=lambda n: need_created_at(n) or far_future)
