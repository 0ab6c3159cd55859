"""Unit tests of sourcing's wiring and of the requests turned into commands: no database, no broker."""

from __future__ import annotations

from decimal import Decimal
from functools import partial
from pathlib import Path

from sourcing.bootstrap import create_app
from sourcing.entrypoints import requests as to_command
from sourcing.entrypoints import schemas
from sourcing.service_layer import proposals
from sourcing.service_layer.commands import Allocation, AnswerProposal, RecordDelivery
from sourcing.service_layer.events import SupplyNeedSubmitted
from sourcing.settings import SourcingSettings


def test_a_submitted_supply_need_is_handed_to_the_stalled_stock_offer_on_the_apps_own_bus(
    tmp_path: Path,
) -> None:
    settings = SourcingSettings(demo=True, data_dir=tmp_path, broker_enabled=False, log_json=False)
    app = create_app(settings)
    handlers = app.state.platform.bus.handlers(SupplyNeedSubmitted)
    assert len(handlers) == 1
    handler = handlers[0]
    assert isinstance(handler, partial)
    assert handler.func is proposals.offer_stalled_for_need
    # The context the routes use is the one the handler was given: built once, not patched later.
    assert handler.keywords["ctx"] is app.state.ctx


def test_a_supplier_change_keeps_only_the_fields_the_caller_sent_even_a_null() -> None:
    data = schemas.SupplierUpdate.model_validate({"phone": "031 555", "lat": None, "lon": None})
    assert dict(to_command.change_supplier(data).changes) == {"phone": "031 555", "lat": None, "lon": None}


def test_a_delivery_without_a_body_delivers_whatever_is_still_owed() -> None:
    assert to_command.record_delivery(None) == RecordDelivery(
        quantity=None, allocations=(), delivered_at=None
    )
    body = schemas.DeliverIn.model_validate({"allocations": [{"cooperative_id": "k1", "quantity": "2.5"}]})
    assert to_command.record_delivery(body).allocations == (Allocation("k1", Decimal("2.5")),)


def test_an_answer_without_a_body_answers_for_every_side_the_caller_holds() -> None:
    assert to_command.answer("decline", None) == AnswerProposal(decision="decline", side=None, note=None)
