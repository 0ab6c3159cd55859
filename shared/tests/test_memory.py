"""Freed memory goes back to the operating system: the background job trims the heap once the RSS
has grown, which glibc never does by itself for free pages in the middle of its heap."""

from __future__ import annotations

import asyncio

from kkmp_shared.memory import release_freed_memory, rss_bytes

MB = 1024 * 1024


def fragmented_heap() -> list[bytes]:
    """About 300 MB of malloc'd blocks (above pymalloc's 512-byte limit, below the mmap threshold),
    then all but every 64th freed: the survivors pin the heap, so the free pages sit in its middle."""
    blocks = [bytes(2048) for _ in range(150_000)]
    return blocks[::64]


async def test_the_job_hands_freed_heap_pages_back_when_the_rss_grew() -> None:
    job = asyncio.create_task(release_freed_memory(interval_s=0.05, growth_bytes=16 * MB))
    try:
        await asyncio.sleep(0.2)  # its first look sets the baseline
        before = rss_bytes()
        survivors = fragmented_heap()
        grown = rss_bytes()
        assert grown - before > 100 * MB, "the allocation did not grow the RSS; the test proves nothing"
        for _ in range(40):
            await asyncio.sleep(0.05)
            if rss_bytes() < grown - 100 * MB:
                break
        assert rss_bytes() < grown - 100 * MB, (before // MB, grown // MB, rss_bytes() // MB)
        assert len(survivors) > 0
    finally:
        job.cancel()
