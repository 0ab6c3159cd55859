"""What a reader may see of the read model."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scope:
    """`kecamatan` None for the whole city (admin, service, an officer without codes) or the kecamatan
    codes of an officer's area; `cooperative_id` set for a cooperative's manager, who sees only its own
    rows. Every list applies it in SQL."""

    kecamatan: list[str] | None = None
    cooperative_id: str | None = None
