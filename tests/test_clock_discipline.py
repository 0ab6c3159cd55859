"""Business time comes from `kkmp_shared.clock`: no production module asks the system for it.

A rule that read the system's date directly could not be tested on the 1st of a month or on a leap day;
this walks the syntax of every production module (not comments or strings) and names each offender.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
CLOCK = ROOT / "shared" / "kkmp_shared" / "clock.py"
# (object, attribute) calls that read the system's time of day or date.
FORBIDDEN = {
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("datetime", "today"),
    ("date", "today"),
    ("time", "time"),
    ("time", "time_ns"),
}


def production_modules() -> list[Path]:
    roots = [ROOT / "shared" / "kkmp_shared", ROOT / "cli" / "kkmp_cli"]
    roots += [d / d.name for d in (ROOT / "services").iterdir() if (d / d.name).is_dir()]
    return sorted(p for r in roots for p in r.rglob("*.py") if p != CLOCK)


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):  # dt.datetime.now(), datetime.datetime.now()
        return node.attr
    return None


def system_time_reads(source: str) -> list[tuple[int, str]]:
    found = []
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            pair = (_name(node.func.value), node.func.attr)
            if pair in FORBIDDEN:
                found.append((node.lineno, f"{pair[0]}.{pair[1]}()"))
        if isinstance(node, ast.ImportFrom) and node.module == "time":
            found += [
                (node.lineno, f"from time import {a.name}") for a in node.names if a.name.startswith("time")
            ]
    return found


def test_the_check_finds_every_way_of_reading_the_system_time() -> None:
    source = (
        "import datetime as dt, time\nfrom datetime import date, datetime\nfrom time import time as now\n"
        "a = datetime.now(UTC)\nb = dt.datetime.utcnow()\nc = date.today()\nd = time.time()\n"
        "e = dt.date.today()\nf = time.monotonic()\ng = clock.now()\n"
    )
    assert [line for line, _ in system_time_reads(source)] == [3, 4, 5, 6, 7, 8]


def test_no_production_module_reads_business_time_from_the_system() -> None:
    modules = production_modules()
    assert len(modules) > 150, "the walk found the services' modules"
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: {what}"
        for path in modules
        for line, what in system_time_reads(path.read_text())
    ]
    assert not offenders, (
        "use kkmp_shared.clock.now()/today(tz) (system_seconds() for token lifetimes):\n"
        + "\n".join(offenders)
    )
