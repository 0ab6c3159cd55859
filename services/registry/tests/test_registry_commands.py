"""The routes' request models become the use cases' commands without losing what the client meant."""

from __future__ import annotations

from datetime import date

import pytest
from registry.entrypoints import schemas
from registry.service_layer import commands

pytestmark = pytest.mark.unit


def test_an_update_carries_only_the_fields_sent_and_a_null_is_kept_apart_from_a_field_left_out() -> None:
    data = schemas.CooperativeUpdate.model_validate({"address": None, "status": "operating"})
    command = data.command("c-1")
    assert command.cooperative_id == "c-1"
    assert dict(command.changes) == {"address": None, "status": "operating"}


def test_an_update_with_a_deed_carries_it_as_the_commands_deed() -> None:
    deed = {"number": "AHU-1", "date": "2025-07-01", "notary": "Notaris Satu"}
    command = schemas.CooperativeUpdate.model_validate({"deed": deed}).command("c-1")
    assert command.changes == {"deed": commands.Deed("AHU-1", date(2025, 7, 1), "Notaris Satu")}


def test_a_registration_keeps_its_deed_units_and_defaults() -> None:
    body = {"name": "KKMP Ketintang", "kelurahan_code": "35.78.01.1001", "formation": "new"}
    command = schemas.CooperativeCreate.model_validate(body).command()
    assert command == commands.RegisterCooperative(
        name="KKMP Ketintang", kelurahan_code="35.78.01.1001", formation="new", business_units=["sembako"]
    )


def test_a_board_member_position_is_normalised_before_it_reaches_the_use_case() -> None:
    board = schemas.BoardIn.model_validate({"members": [{"name": "Bu Sari", "position": "Ketua"}]})
    assert board.command("c-1").members == [commands.BoardMember(name="Bu Sari", position="ketua")]
