"""Wording helpers for messages; number, money and date formats come from `kkmp_shared.locale_id`."""

from __future__ import annotations

from kkmp_shared.locale_id import number as number
from kkmp_shared.locale_id import periode as periode
from kkmp_shared.locale_id import quantity as quantity
from kkmp_shared.locale_id import rupiah as rupiah
from kkmp_shared.locale_id import rupiah_compact
from kkmp_shared.locale_id import tanggal as tanggal
from kkmp_shared.locale_id import to_wib as to_wib

# A rounded figure for a sentence: Rp8,1 juta; below a million the exact amount.
rupiah_approx = rupiah_compact


def in_sentence(name: str) -> str:
    """A commodity name inside a sentence: "Beras medium" -> "beras medium", "LPG 3 kg" stays."""
    if len(name) > 1 and name[0].isupper() and name[1].islower():
        return name[0].lower() + name[1:]
    return name


def capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]
