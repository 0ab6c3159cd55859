"""Polling helpers for tests of eventually-consistent behaviour (relays, consumers, reconnects).

``eventually`` (async) and ``wait_until`` (sync) call a function until it returns something truthy
and return that value. A fixed ``sleep`` is either too short on a loaded 2-core CI machine or
wastes time everywhere else; polling to a deadline is neither. When the deadline passes they raise
``AssertionError`` carrying the last value or exception, so the failure says *what* was still
wrong, not just "timed out".
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

__all__ = ["QUIET_PERIOD_S", "eventually", "holds", "quiet_period", "wait_until"]

T = TypeVar("T")

_DEFAULT_TIMEOUT = 10.0
_DEFAULT_INTERVAL = 0.05


def _describe(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


def _failure(
    fn: Callable[..., Any],
    timeout: float,
    attempts: int,
    last_value: Any,
    last_exc: BaseException | None,
    message: str | None,
) -> AssertionError:
    what = message or f"condition {_describe(fn)}"
    if last_exc is not None:
        last = f"last attempt raised {type(last_exc).__name__}: {last_exc}"
    else:
        last = f"last value was {last_value!r}"
    return AssertionError(f"{what} not met within {timeout:.1f}s after {attempts} attempts; {last}")


@overload
async def eventually(
    fn: Callable[[], Awaitable[T]],
    timeout: float = ...,
    interval: float = ...,
    *,
    message: str | None = ...,
) -> T: ...


@overload
async def eventually(
    fn: Callable[[], T],
    timeout: float = ...,
    interval: float = ...,
    *,
    message: str | None = ...,
) -> T: ...


async def eventually(
    fn: Callable[[], Any],
    timeout: float = _DEFAULT_TIMEOUT,
    interval: float = _DEFAULT_INTERVAL,
    *,
    message: str | None = None,
) -> Any:
    """Poll ``fn`` (sync or async) until it returns a truthy value, and return that value.

    Exceptions raised by ``fn`` (``AssertionError`` included, so ``fn`` may simply assert) count
    as "not yet" and are retried; the last one is chained to the final ``AssertionError``.
    ``fn`` is always attempted at least once, even with ``timeout=0``. A single attempt that
    hangs is cut at the deadline too.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    attempts = 0
    last_value: Any = None
    last_exc: BaseException | None = None
    while True:
        attempts += 1
        try:
            result = fn()
            if inspect.isawaitable(result):
                # Bound each attempt by the remaining time: an await that never returns (a
                # consumer that never gets its message) must still fail at the deadline.
                remaining = max(deadline - loop.time(), 0.001)
                result = await asyncio.wait_for(result, remaining)
        except Exception as exc:  # TimeoutError from wait_for included
            last_exc, last_value = exc, None
        else:
            if result:
                return result
            last_exc, last_value = None, result
        if loop.time() >= deadline:
            raise _failure(fn, timeout, attempts, last_value, last_exc, message) from last_exc
        await asyncio.sleep(min(interval, max(deadline - loop.time(), 0)))


def wait_until(
    fn: Callable[[], T],
    timeout: float = _DEFAULT_TIMEOUT,
    interval: float = _DEFAULT_INTERVAL,
    *,
    message: str | None = None,
) -> T:
    """Blocking twin of :func:`eventually` for sync code and fixtures; ``fn`` must be sync."""
    deadline = time.monotonic() + timeout
    attempts = 0
    last_value: Any = None
    last_exc: BaseException | None = None
    while True:
        attempts += 1
        try:
            result = fn()
        except Exception as exc:
            last_exc, last_value = exc, None
        else:
            if inspect.isawaitable(result):
                # A coroutine is always truthy: accepting it would pass without ever running it.
                close = getattr(result, "close", None)
                if close is not None:
                    close()
                raise TypeError(f"wait_until got an awaitable from {_describe(fn)}; use eventually()")
            if result:
                return result
            last_exc, last_value = None, result
        if time.monotonic() >= deadline:
            raise _failure(fn, timeout, attempts, last_value, last_exc, message) from last_exc
        time.sleep(min(interval, max(deadline - time.monotonic(), 0)))


#: How long a test watches for "nothing else arrives": an event published or delivered twice reaches a
#: consumer within a relay poll (0.2 s in tests) and a consumer's batch linger (at most 0.25 s). The one
#: constant for every such wait, so a slower machine is answered in one place.
QUIET_PERIOD_S = 0.6


async def quiet_period(seconds: float = QUIET_PERIOD_S) -> None:
    """Give anything still in flight the time to arrive, before asserting that nothing more did."""
    await asyncio.sleep(seconds)


async def holds(
    fn: Callable[[], Any], seconds: float = QUIET_PERIOD_S, interval: float = _DEFAULT_INTERVAL
) -> None:
    """Assert that `fn()` stays truthy for the whole quiet period (e.g. a count that must not grow)."""
    deadline = time.monotonic() + seconds
    while True:
        value = fn()
        if inspect.isawaitable(value):
            value = await value
        if not value:
            raise AssertionError(f"{_describe(fn)} stopped holding during the quiet period: {value!r}")
        if time.monotonic() >= deadline:
            return
        await asyncio.sleep(interval)
