"""Unit tests of the registry's pure rules: status lifecycle, board composition, the region loader."""

from __future__ import annotations

from pathlib import Path

import pytest
from kkmp_shared import refdata
from registry.domain.rules import (
    ALLOWED_STATUS_CHANGES,
    BOARD_POSITIONS,
    BUSINESS_UNITS,
    COOPERATIVE_STATUSES,
    IllegalStatusChange,
    RegionFileError,
    accepts_new_members,
    board_position_rank,
    board_problems,
    check_status_change,
    load_regions,
    normalise_board_position,
    status_change_allowed,
)
from registry.entrypoints import schemas

pytestmark = pytest.mark.unit

DATA = refdata.directory()

# --- lifecycle ------------------------------------------------------------------------------------

LEGAL = {
    ("formed", "operating"),
    ("formed", "dissolved"),
    ("operating", "suspended"),
    ("operating", "dissolved"),
    ("suspended", "operating"),
    ("suspended", "dissolved"),
}


@pytest.mark.parametrize("old", COOPERATIVE_STATUSES)
@pytest.mark.parametrize("new", COOPERATIVE_STATUSES)
def test_every_status_pair_is_allowed_exactly_when_the_lifecycle_says_so(old: str, new: str) -> None:
    expected = (old, new) in LEGAL
    assert status_change_allowed(old, new) is expected
    if expected:
        check_status_change(old, new)
    else:
        with pytest.raises(IllegalStatusChange) as info:
            check_status_change(old, new)
        assert info.value.old == old and info.value.new == new
        assert f"'{old}' to '{new}'" in str(info.value)


def test_dissolution_is_final_and_unknown_statuses_go_nowhere() -> None:
    assert ALLOWED_STATUS_CHANGES["dissolved"] == frozenset()
    assert not status_change_allowed("dissolved", "operating")
    assert not status_change_allowed("bankrupt", "operating")
    assert not status_change_allowed("formed", "bankrupt")
    with pytest.raises(IllegalStatusChange, match="allowed from 'dissolved': none"):
        check_status_change("dissolved", "formed")


def test_a_dissolved_cooperative_takes_no_members() -> None:
    assert accepts_new_members("formed") and accepts_new_members("operating")
    assert accepts_new_members("suspended")
    assert not accepts_new_members("dissolved")


def test_the_issues_business_units_are_all_accepted() -> None:
    for unit in (
        "sembako", "lpg", "apotek", "klinik", "simpan_pinjam", "cold_storage", "logistik",
        "payment_services", "others",
    ):  # fmt: skip
        assert unit in BUSINESS_UNITS


# --- board ----------------------------------------------------------------------------------------


def test_a_full_board_is_acceptable() -> None:
    board = [
        "ketua",
        "wakil_ketua",
        "sekretaris",
        "bendahara",
        "manajer",
        "pengawas_ketua",
        "pengawas",
        "pengawas",
    ]
    assert board_problems(board) == []


def test_an_empty_board_is_acceptable_and_a_board_without_ketua_is_not() -> None:
    assert board_problems([]) == []
    assert board_problems(["sekretaris"]) == ["a board needs a ketua"]


def test_single_seats_hold_one_person_but_pengawas_may_be_many() -> None:
    problems = board_problems(
        ["ketua", "ketua", "bendahara", "bendahara", "pengawas_ketua", "pengawas_ketua"]
    )
    assert sorted(problems) == [
        "position 'bendahara' is held by 2 people; it has one seat",
        "position 'ketua' is held by 2 people; it has one seat",
        "position 'pengawas_ketua' is held by 2 people; it has one seat",
    ]
    assert board_problems(["ketua", "pengawas", "pengawas", "pengawas"]) == []


def test_board_positions_are_written_as_people_write_them_and_listed_in_deed_order() -> None:
    assert normalise_board_position("Wakil Ketua") == "wakil_ketua"
    assert normalise_board_position(" pengawas-ketua ") == "pengawas_ketua"
    member = schemas.BoardMemberIn(name="Budi Santoso", position="Wakil Ketua")
    assert member.position == "wakil_ketua"
    ranks = [board_position_rank(p) for p in BOARD_POSITIONS]
    assert ranks == sorted(ranks)
    assert board_position_rank("ketua") < board_position_rank("bendahara") < board_position_rank("pengawas")
    assert board_position_rank("juru_masak") == len(BOARD_POSITIONS)
    with pytest.raises(ValueError):
        schemas.BoardMemberIn(name="Budi Santoso", position="juru masak")


# --- regions --------------------------------------------------------------------------------------


def test_the_reference_csv_has_31_kecamatan_and_153_kelurahan_with_points() -> None:
    kecamatan, kelurahan = load_regions(DATA / "surabaya_kelurahan.csv", DATA / "surabaya_coords.csv")
    assert len(kecamatan) == 31
    assert len(kelurahan) == 153
    assert len({k.code for k in kelurahan}) == 153
    assert all(k.lat is not None and k.lon is not None for k in kecamatan + kelurahan)
    # Every point lies in Surabaya.
    assert all(-7.40 < k.lat < -7.15 and 112.55 < k.lon < 112.85 for k in kelurahan)  # type: ignore[operator]
    by_code = {k.code: k for k in kecamatan}
    assert by_code["35.78.01"].name == "Karang Pilang" and by_code["35.78.01"].parent_code == "35.78"
    assert all(k.parent_code in by_code for k in kelurahan)


def test_the_reference_data_quirks_are_kept() -> None:
    _, kelurahan = load_regions(DATA / "surabaya_kelurahan.csv", DATA / "surabaya_coords.csv")
    by_code = {k.code: k for k in kelurahan}
    # Perak Timur and Perak Utara were merged into Tanjung Perak.
    assert by_code["35.78.12.1006"].name == "Tanjung Perak"
    assert not [k for k in kelurahan if k.name in ("Perak Timur", "Perak Utara")]
    # Tandes keeps its numbering gaps.
    tandes = sorted(k.code[-4:] for k in kelurahan if k.parent_code == "35.78.14")
    assert tandes == ["1002", "1006", "1007", "1009", "1011", "1012"]
    # Two Wonorejo, one in Rungkut and one in Tegalsari: only the code tells them apart.
    wonorejo = sorted((k.code, k.parent_code) for k in kelurahan if k.name == "Wonorejo")
    assert wonorejo == [("35.78.03.1005", "35.78.03"), ("35.78.05.1005", "35.78.05")]


def test_the_loader_takes_another_citys_list_of_the_same_shape(tmp_path: Path) -> None:
    regions = tmp_path / "sidoarjo.csv"
    regions.write_text(
        "kecamatan_code,kecamatan_name,kelurahan_code,kelurahan_name\n"
        "35.15.01,Sidoarjo,35.15.01.1001,Sidokare\n"
        "35.15.01,Sidoarjo,35.15.01.1003,Lemahputro\n"
        "35.15.02,Buduran,35.15.02.2001,Sidokepung\n",
        encoding="utf-8",
    )
    points = tmp_path / "points.csv"
    points.write_text(
        "level,code,name,parent_code,lat,lon\nkelurahan,35.15.01.1001,Sidokare,35.15.01,-7.45,112.71\n"
    )
    kecamatan, kelurahan = load_regions(regions, points)
    assert [(k.code, k.name, k.parent_code) for k in kecamatan] == [
        ("35.15.01", "Sidoarjo", "35.15"),
        ("35.15.02", "Buduran", "35.15"),
    ]
    assert [k.code for k in kelurahan] == ["35.15.01.1001", "35.15.01.1003", "35.15.02.2001"]
    assert (kelurahan[0].lat, kelurahan[0].lon) == (-7.45, 112.71)
    assert kelurahan[1].lat is None  # no point given: loaded without one
    # Without a points file at all.
    assert len(load_regions(regions)[1]) == 3


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("kecamatan_code,kecamatan_name,kelurahan_code\n", "missing column"),
        ("kecamatan_code,kecamatan_name,kelurahan_code,kelurahan_name\n", "no kelurahan"),
        (
            "kecamatan_code,kecamatan_name,kelurahan_code,kelurahan_name\n35.78.01,A,35.78.02.1001,X\n",
            "not inside",
        ),
        (
            "kecamatan_code,kecamatan_name,kelurahan_code,kelurahan_name\n35.78.1,A,35.78.01.1001,X\n",
            "line 2",
        ),
        (
            "kecamatan_code,kecamatan_name,kelurahan_code,kelurahan_name\n"
            "35.78.01,A,35.78.01.1001,X\n35.78.01,A,35.78.01.1001,Y\n",
            "appears twice",
        ),
        (
            "kecamatan_code,kecamatan_name,kelurahan_code,kelurahan_name\n"
            "35.78.01,A,35.78.01.1001,X\n35.78.01,B,35.78.01.1002,Y\n",
            "named both",
        ),
    ],
)
def test_a_malformed_region_list_is_refused_with_the_line(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "regions.csv"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(RegionFileError, match=message):
        load_regions(path)
