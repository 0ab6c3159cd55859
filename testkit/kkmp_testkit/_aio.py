"""Run a coroutine to completion from sync code, even when the caller is inside an event loop.

The sync helpers of this package (``ensure_postgres``, ``create_database``, the AMQP login probe)
are called from sync fixtures *and* from ``async def`` tests. ``asyncio.run`` refuses to run inside
a running loop, so each call gets a fresh loop in a short-lived thread of its own. It blocks the
caller's loop for that time, which is acceptable for set-up and tear-down code.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on a new event loop in a new thread and return its result (or raise)."""
    box: dict[str, Any] = {}

    def runner() -> None:
        try:
            box["result"] = asyncio.run(coro)
        except BaseException as exc:  # re-raised in the caller's thread below
            box["error"] = exc

    thread = threading.Thread(target=runner, name="kkmp-testing-run-sync", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    result: T = box["result"]
    return result
