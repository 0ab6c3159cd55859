"""The stock page skips response validation and writes its JSON with orjson: the bytes must be exactly
what the `StockLine` response model would have written."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from inventory.entrypoints.api import stock_lines_json
from inventory.entrypoints.schemas import StockLine
from pydantic import TypeAdapter

pytestmark = pytest.mark.unit


def _line(**overrides: Any) -> dict[str, Any]:
    line: dict[str, Any] = {
        "commodity": "beras_medium",
        "name": "Beras medium",
        "unit": "kg",
        "on_hand": Decimal("94.000"),
        "last_sale_at": datetime(2025, 11, 28, 17, 23, 23, 747877, tzinfo=UTC),
        "avg_daily_sales": Decimal("0.214"),
        "days_of_cover": Decimal("438.67"),
        "status": "ok",
        "unmoved_since": datetime(2025, 11, 1, tzinfo=UTC),
        "days_since_sale": 27,
        "unit_cost": 10000,
        "value": 940000,
        "price_ceiling": 13500,
        "episode": None,
        "episode_since": None,
    }
    line.update(overrides)
    return line


@pytest.mark.parametrize(
    "lines",
    [
        [],
        [_line()],
        [
            _line(),
            _line(
                commodity="gula",
                on_hand=Decimal("0.000"),
                avg_daily_sales=Decimal("0.000"),
                days_of_cover=None,
                status="stockout",
                last_sale_at=None,
                unmoved_since=None,
                days_since_sale=None,
                unit_cost=None,
                value=0,
                price_ceiling=None,
                episode="stockout",
                episode_since=datetime(2025, 11, 27, 8, 0, 0, 1, tzinfo=UTC),
            ),
            _line(commodity="telur", on_hand=Decimal("12345678.125"), avg_daily_sales=Decimal("1.001")),
        ],
    ],
)
def test_stock_json_is_what_the_response_model_writes(lines: list[dict[str, Any]]) -> None:
    expected = TypeAdapter(list[StockLine]).dump_json(TypeAdapter(list[StockLine]).validate_python(lines))
    response = stock_lines_json(lines)
    assert response.body == expected
    assert response.media_type == "application/json"
