"""The ingest load of the bench, in a process of its own.

Encoding and posting 1,000-movement batches costs the load generator real CPU; done in the process
that also runs the inbox watcher, the webhook receiver and the exchange probe, it would delay their
timestamps and be counted as alert latency. Run here, the probe's clocks see only the platform.

    python bench/ingest_load.py URL TOKEN SPEC     # SPEC: JSON [[cooperative_id, movements], ...]
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import httpx

CONCURRENCY = 4


def batch(movements: int) -> dict[str, Any]:
    """One receipt large enough for every sale, then sales of one unit: all valid, all recorded."""
    body = [{"commodity": "beras_medium", "kind": "receipt", "quantity": "100000", "unit_price": 12000}]
    body += [
        {"commodity": "beras_medium", "kind": "sale", "quantity": "1", "unit_price": 13000}
        for _ in range(movements - 1)
    ]
    return {"movements": body}


async def post_all(url: str, token: str, spec: list[tuple[str, int]]) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    sem = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient(timeout=300) as client:

        async def post(coop: str, movements: int) -> None:
            async with sem:
                r = await client.post(
                    f"{url}/cooperatives/{coop}/movements/batch", headers=headers, json=batch(movements)
                )
                r.raise_for_status()

        await asyncio.gather(*(post(coop, n) for coop, n in spec))


async def run_ingest(url: str, token: str, spec: list[tuple[str, int]]) -> None:
    """Post the batches from a child process and wait for it; raise if any post failed."""
    proc = await asyncio.create_subprocess_exec(sys.executable, __file__, url, token, json.dumps(spec))
    if await proc.wait() != 0:
        raise RuntimeError(f"the ingest load process exited with {proc.returncode}")


if __name__ == "__main__":
    _url, _token, _spec = sys.argv[1:4]
    asyncio.run(post_all(_url, _token, [(c, int(n)) for c, n in json.loads(_spec)]))
