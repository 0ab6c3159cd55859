"""The cooperative health score ("hidup-matinya koperasi"): 0-100 from transparent, weighted factors.

Each factor is a value between 0 (bad) and 1 (good) with a note in Bahasa Indonesia saying how it was
reached, so an officer can see *why* a cooperative is `tidak_aktif`. The score is the weighted mean of
the factor values times 100; the level follows from two thresholds. Weights, thresholds and targets
are configuration (`HealthPolicy`), not code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from kkmp_shared.locale_id import rupiah

HealthLevel = Literal["aktif", "kurang_aktif", "tidak_aktif"]
LEVELS: tuple[HealthLevel, ...] = ("aktif", "kurang_aktif", "tidak_aktif")

TRADING_ACTIVITY = "trading_activity"
STALLED_STOCK = "stalled_stock"
UNANSWERED_NEEDS = "unanswered_needs"
REPORTS_ON_TIME = "reports_on_time"
MEMBER_GROWTH = "member_growth"
TRAINING = "training"
FACTORS: tuple[str, ...] = (
    TRADING_ACTIVITY,
    STALLED_STOCK,
    UNANSWERED_NEEDS,
    REPORTS_ON_TIME,
    MEMBER_GROWTH,
    TRAINING,
)
DEFAULT_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {
        TRADING_ACTIVITY: 0.30,
        STALLED_STOCK: 0.20,
        UNANSWERED_NEEDS: 0.10,
        REPORTS_ON_TIME: 0.20,
        MEMBER_GROWTH: 0.10,
        TRAINING: 0.10,
    }
)
# A cooperative the registry has suspended or dissolved is not alive, whatever its figures say.
INACTIVE_STATUSES = {"suspended": "dibekukan", "dissolved": "dibubarkan"}


@dataclass(frozen=True)
class HealthPolicy:
    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    aktif_min: float = 70.0
    kurang_aktif_min: float = 40.0
    sales_window_days: int = 30
    sale_days_target: int = 12
    unanswered_after_hours: float = 72.0
    unanswered_limit: int = 3
    report_periods: int = 3
    member_window_days: int = 90
    member_target: int = 5
    training_window_days: int = 365
    training_target: int = 1

    def __post_init__(self) -> None:
        unknown = set(self.weights) - set(FACTORS)
        if unknown:
            raise ValueError(f"unknown health factors in weights: {sorted(unknown)}; known: {list(FACTORS)}")
        if any(w < 0 for w in self.weights.values()):
            raise ValueError("health weights must not be negative")
        if sum(self.weights.get(f, 0.0) for f in FACTORS) <= 0:
            raise ValueError("at least one health weight must be positive")
        if not 0 <= self.kurang_aktif_min <= self.aktif_min <= 100:
            raise ValueError("thresholds must satisfy 0 <= kurang_aktif_min <= aktif_min <= 100")
        for name in (
            "sales_window_days",
            "sale_days_target",
            "unanswered_limit",
            "report_periods",
            "member_window_days",
            "member_target",
            "training_window_days",
            "training_target",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")

    def weight(self, factor: str) -> float:
        return float(self.weights.get(factor, 0.0))


@dataclass(frozen=True)
class HealthInputs:
    """What the read model knows about one cooperative, already counted over the policy's windows."""

    status: str = "operating"
    sale_days: int = 0
    sales_value: int = 0
    items_on_hand: int = 0
    items_stalled: int = 0
    stalled_value: int = 0
    unanswered_needs: int = 0
    reports_expected: int = 0
    reports_on_time: int = 0
    reports_late: int = 0
    members_joined: int = 0
    member_count: int = 0
    trainings: int = 0


@dataclass(frozen=True)
class Factor:
    name: str
    value: float
    weight: float
    note: str


@dataclass(frozen=True)
class HealthAssessment:
    score: float
    level: HealthLevel
    factors: tuple[Factor, ...]


def level_for_score(score: float, policy: HealthPolicy) -> HealthLevel:
    """`aktif` from `aktif_min` up, `kurang_aktif` from `kurang_aktif_min` up, else `tidak_aktif`."""
    if score >= policy.aktif_min:
        return "aktif"
    if score >= policy.kurang_aktif_min:
        return "kurang_aktif"
    return "tidak_aktif"


def _factor(name: str, value: float, policy: HealthPolicy, note: str) -> Factor:
    return Factor(name, round(value, 4), policy.weight(name), note)


def _ratio(have: float, target: float) -> float:
    return max(0.0, min(1.0, have / target)) if target > 0 else 1.0


def trading_activity(inputs: HealthInputs, policy: HealthPolicy) -> Factor:
    value = _ratio(inputs.sale_days, policy.sale_days_target)
    note = (
        f"Ada penjualan pada {inputs.sale_days} dari {policy.sales_window_days} hari terakhir "
        f"(target {policy.sale_days_target} hari); nilai penjualan {rupiah(inputs.sales_value)}."
    )
    return _factor(TRADING_ACTIVITY, value, policy, note)


def stalled_stock(inputs: HealthInputs, policy: HealthPolicy) -> Factor:
    on_hand = max(inputs.items_on_hand, inputs.items_stalled)
    if on_hand == 0:
        return _factor(STALLED_STOCK, 1.0, policy, "Tidak ada stok yang macet.")
    value = 1.0 - inputs.items_stalled / on_hand
    note = (
        f"{inputs.items_stalled} dari {on_hand} komoditas yang ada stoknya macet "
        f"(nilai stok macet {rupiah(inputs.stalled_value)})."
    )
    return _factor(STALLED_STOCK, value, policy, note)


def unanswered_needs(inputs: HealthInputs, policy: HealthPolicy) -> Factor:
    value = max(0.0, 1.0 - inputs.unanswered_needs / policy.unanswered_limit)
    hours = f"{policy.unanswered_after_hours:g}"
    note = (
        f"{inputs.unanswered_needs} kebutuhan belum ditanggapi lebih dari {hours} jam "
        f"(nilai 0 pada {policy.unanswered_limit} atau lebih)."
    )
    return _factor(UNANSWERED_NEEDS, value, policy, note)


def reports_on_time(inputs: HealthInputs, policy: HealthPolicy) -> Factor:
    if inputs.reports_expected == 0:
        note = "Belum ada laporan bulanan yang jatuh tempo."
        return _factor(REPORTS_ON_TIME, 1.0, policy, note)
    value = inputs.reports_on_time / inputs.reports_expected
    missing = inputs.reports_expected - inputs.reports_on_time - inputs.reports_late
    note = (
        f"{inputs.reports_on_time} dari {inputs.reports_expected} laporan bulanan terakhir tepat waktu "
        f"({inputs.reports_late} terlambat, {missing} belum masuk)."
    )
    return _factor(REPORTS_ON_TIME, value, policy, note)


def member_growth(inputs: HealthInputs, policy: HealthPolicy) -> Factor:
    value = _ratio(inputs.members_joined, policy.member_target)
    note = (
        f"{inputs.members_joined} anggota baru dalam {policy.member_window_days} hari terakhir "
        f"(target {policy.member_target}); jumlah anggota {inputs.member_count}."
    )
    return _factor(MEMBER_GROWTH, value, policy, note)


def training(inputs: HealthInputs, policy: HealthPolicy) -> Factor:
    value = _ratio(inputs.trainings, policy.training_target)
    note = (
        f"{inputs.trainings} pelatihan selesai diikuti dalam {policy.training_window_days} hari terakhir "
        f"(target {policy.training_target})."
    )
    return _factor(TRAINING, value, policy, note)


_FACTOR_RULES = (trading_activity, stalled_stock, unanswered_needs, reports_on_time, member_growth, training)


def assess_health(inputs: HealthInputs, policy: HealthPolicy) -> HealthAssessment:
    """Score 0-100 = 100 × Σ(weight × value) / Σ weight, rounded to one decimal; then the level."""
    factors = [rule(inputs, policy) for rule in _FACTOR_RULES]
    total_weight = sum(f.weight for f in factors)
    score = round(100.0 * sum(f.weight * f.value for f in factors) / total_weight, 1)
    level = level_for_score(score, policy)
    if inputs.status in INACTIVE_STATUSES:
        level = "tidak_aktif"
        note = f"Koperasi berstatus {INACTIVE_STATUSES[inputs.status]} di registri; dihitung tidak aktif."
        factors.append(Factor("status", 0.0, 0.0, note))
    return HealthAssessment(score=score, level=level, factors=tuple(factors))
