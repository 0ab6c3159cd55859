"""Giving memory that Python has freed back to the operating system.

A burst of large requests (a shop's 1,000-line sync, the events it stages, the relay publishing them)
allocates tens of megabytes that are freed a moment later, but glibc keeps freed heap memory for reuse
and the process's RSS stays at its high-water mark. Two things bring it back down:

- the environment `ALLOCATOR_ENV` (set by `kkmp run` and the test/benchmark `Platform`, and in the
  Dockerfile): at most two malloc arenas (threads each get their own otherwise: the event loop's
  executor, the thread that runs migrations), and a fixed 128 KiB threshold above which blocks are
  mapped on their own and unmapped when freed, instead of glibc raising that threshold to 32 MiB after
  the first large free (its default) and keeping every later large block in the heap;
- `release_freed_memory`, a background job that calls `malloc_trim(0)` when the RSS grew by a few
  megabytes since it last looked: it hands back the free pages in the middle of the heap, which
  glibc never does by itself. Steady traffic does not grow the RSS, so it does not run then.

Neither exists outside glibc (musl, macOS): there the job does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import os
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("kkmp.memory")

# glibc tunables read when a process starts: the service's parent must set them.
ALLOCATOR_ENV = {
    "MALLOC_ARENA_MAX": "2",
    "MALLOC_MMAP_THRESHOLD_": "131072",
    "MALLOC_TRIM_THRESHOLD_": "131072",
}


def allocator_env(env: dict[str, str]) -> dict[str, str]:
    """`env` with the allocator settings added (values already in it win)."""
    return {**ALLOCATOR_ENV, **env}


def rss_bytes() -> int:
    """Resident set size of this process (0 where /proc is not available)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


def _malloc_trim() -> Callable[[], object] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: trim(0)


async def release_freed_memory(interval_s: float = 5.0, growth_bytes: int = 8 * 1024 * 1024) -> None:
    """Run for ever: trim the heap when the RSS grew by `growth_bytes` since the last look."""
    trim = _malloc_trim()
    if trim is None or rss_bytes() == 0:
        return
    baseline = rss_bytes()
    while True:
        await asyncio.sleep(interval_s)
        now = rss_bytes()
        if now - baseline >= growth_bytes:
            # ctypes releases the GIL: the trim (a few milliseconds) runs beside the event loop.
            await asyncio.to_thread(trim)
            after = rss_bytes()
            log.debug("malloc_trim: rss %d -> %d MiB", now >> 20, after >> 20)
            baseline = after
        elif now < baseline:
            baseline = now
