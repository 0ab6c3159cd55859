"""`kkmp_shared.refdata`: the reference data ships inside the package (one copy; the repository's data/
keeps only a pointer to it), and every file the services name is there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kkmp_shared import refdata

REPO_DATA = Path(__file__).resolve().parents[2] / "data"


@pytest.mark.parametrize(
    "name",
    [
        refdata.COMMODITIES,
        refdata.KELURAHAN,
        refdata.COORDS,
        refdata.KECAMATAN_GEOJSON,
        refdata.KELURAHAN_GEOJSON,
    ],
)
def test_every_named_file_is_in_the_package(name: str) -> None:
    assert refdata.path(name).stat().st_size > 0


def test_rows_read_names_and_paths_alike() -> None:
    kelurahan = refdata.rows(refdata.KELURAHAN)
    assert len(kelurahan) == 153 and kelurahan == refdata.rows(refdata.path(refdata.KELURAHAN))
    assert {row["code"] for row in refdata.rows(refdata.COMMODITIES)} >= {"beras_medium", "lpg_3kg"}
    assert len(json.loads(refdata.path(refdata.KECAMATAN_GEOJSON).read_text("utf-8"))["features"]) == 31


def test_an_unknown_name_is_an_error_not_an_empty_file() -> None:
    with pytest.raises(FileNotFoundError):
        refdata.path("jakarta.csv")


def test_the_attribution_ships_with_the_data_and_the_repository_keeps_no_second_copy() -> None:
    assert "cahya dsn" in refdata.path("README.md").read_text("utf-8")
    if REPO_DATA.is_dir():  # a source checkout: data/ only points to the package
        assert [p.name for p in REPO_DATA.iterdir()] == ["README.md"]
