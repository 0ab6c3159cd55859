"""Paging parameters shared by list endpoints: over-long pages are clamped, not refused."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request


@dataclass(frozen=True)
class Page:
    limit: int
    offset: int


def _page(
    request: Request,
    limit: Annotated[int, Query(ge=1, description="Page size; clamped to the service's maximum")] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> Page:
    maximum = getattr(request.app.state, "max_page_size", 500)
    return Page(limit=min(limit, maximum), offset=offset)


PageDep = Annotated[Page, Depends(_page)]
