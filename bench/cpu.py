"""CPU accounting of a bench run, per process: the profile at the level of processes.

On a machine of N cores no run can spend more than N CPU seconds a second, so the CPU one unit of
work (a movement, a message, a request) costs summed over every process that handles it bounds the
throughput, whatever the code's concurrency: at C ms per unit, N cores give at most N * 1000 / C
units a second. `CpuMeter` measures C for each process: the services, the broker node, PostgreSQL
(all its backends) and the load generator (this process and its ended children), and the whole
machine's busy cores, so a run disturbed by anything else shows it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    """Resident memory of a process now, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def _processes_named(comm: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == comm:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


class CpuMeter:
    """CPU seconds spent by each process between `start` and `stop` (see the module's docstring)."""

    def __init__(self, services: dict[str, int], *, with_children: bool = True) -> None:
        self.services = services  # name -> pid
        # A child that ended inside the window is counted whole, also for what it spent before the
        # window began: a window that starts while a child (the ingest load) runs leaves them out.
        self.with_children = with_children

    def _sample(self) -> dict[str, float]:
        sample = {name: cpu_s(pid) for name, pid in self.services.items()}
        for group, comm in (("rabbitmq", "beam.smp"), ("postgresql", "postgres")):
            total = 0.0
            for pid in _processes_named(comm):
                try:
                    total += cpu_s(pid)
                except OSError:  # a backend that ended between the listing and the read
                    continue
            sample[group] = total
        # This process and its ended children (the ingest load runs as one).
        times = os.times()
        children = times.children_user + times.children_system if self.with_children else 0.0
        sample["bench client"] = time.process_time() + children
        return sample

    @staticmethod
    def _machine_busy_s() -> float:
        """CPU seconds all cores have spent busy since boot (everything but idle and iowait)."""
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        busy = sum(fields[:8]) - fields[3] - fields[4]
        return busy / os.sysconf("SC_CLK_TCK")

    def start(self) -> None:
        self.began, self.wall = self._sample(), time.perf_counter()
        self.machine_began = self._machine_busy_s()

    def stop(self, units: int) -> dict[str, Any]:
        """CPU milliseconds per unit (movement, message) by process, their sum, and the cores
        the whole run kept busy on average."""
        end, elapsed = self._sample(), time.perf_counter() - self.wall
        machine = self._machine_busy_s() - self.machine_began
        spent = {name: max(0.0, end[name] - self.began.get(name, 0.0)) for name in end}
        total = sum(spent.values())
        return {
            "ms_per_unit": {name: round(cpu * 1000 / units, 3) for name, cpu in spent.items()},
            "ms_per_unit_total": round(total * 1000 / units, 3),
            "cores_busy": round(total / elapsed, 2),
            # The whole machine, so a run disturbed by anything else shows it.
            "machine_cores_busy": round(machine / elapsed, 2),
        }
