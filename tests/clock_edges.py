"""Run the date-sensitive tests (marker `clock`) as if it were each of the calendar's awkward moments.

Each moment is taken twice: as Surabaya's wall time (WIB, with TZ=Asia/Jakarta) and as UTC's (TZ=UTC),
since a rule that confuses the two days goes wrong near midnight. `make test-clock` runs it; it prints a
line per moment and fails if any run fails.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MOMENTS = [  # both sides of each edge: a run starts at the instant and its tests see the minutes after it
    ("the 1st of a month, 00:30", "2027-03-01T00:30:00"),
    ("the 10th (a report's due date), 23:59", "2027-01-10T23:59:00"),
    ("the 11th (a day past due), 00:00", "2027-01-11T00:00:00"),
    ("31 December, 23:30", "2026-12-31T23:30:00"),
    ("28 February of a leap year, 23:30", "2028-02-28T23:30:00"),
    ("29 February of a leap year, 23:30", "2028-02-29T23:30:00"),
]
PYTEST = [sys.executable, "-m", "pytest", "-m", "clock", "-q", "-p", "no:cacheprovider"]
ZONES = [("WIB", "Asia/Jakarta", "+07:00"), ("UTC", "UTC", "+00:00")]


def main(extra: list[str]) -> int:
    failed = []
    for label, wall in MOMENTS:
        for zone_label, tz, offset in ZONES:
            instant = f"{wall}{offset}"
            started = time.monotonic()
            run = subprocess.run(
                [*PYTEST, "--clock-at", instant, *extra],
                cwd=ROOT,
                env={**os.environ, "TZ": tz},
                capture_output=True,
                text=True,
            )
            summary = _summary(run.stdout)
            print(
                f"{instant} ({label} {zone_label}, TZ={tz}): {summary} in {time.monotonic() - started:.0f} s",
                flush=True,
            )
            if run.returncode != 0:
                failed.append(instant)
                print(run.stdout[-6000:], run.stderr[-2000:], sep="\n")
    print(f"clock edges: {len(MOMENTS) * len(ZONES) - len(failed)} runs green, {len(failed)} red")
    return 1 if failed else 0


def _summary(output: str) -> str:
    lines = [ln.strip("= ") for ln in output.splitlines() if re.search(r"\d+ (passed|failed|error)", ln)]
    return lines[-1] if lines else "no summary (see output)"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
