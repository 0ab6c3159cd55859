"""The HTTP floor of this machine: the stock-read load (64 keep-alive connections, the same bare
client) against a bare ASGI app under uvicorn, as the services are served (uvloop, httptools, no
access log), that answers a fixed small JSON body without a framework, a token check or a database.

No route of a service can be faster than this, so when the floor's p99 misses the stock-read target
the target is out of this machine's reach for any route served by uvicorn, whatever the route does.

    python bench/http_floor.py            # prints the figures as JSON
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from stock_reads import measure  # noqa: E402

BODY = json.dumps([{"commodity": "beras_medium", "quantity": "100", "unit": "kg"}]).encode()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The whole server: every HTTP request gets the same 200 and body."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": BODY})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def floor(connections: int = 64, seconds: float = 10) -> dict[str, Any]:
    """Start the bare app in its own process, load it, stop it; the same figures as `measure`."""
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "uvicorn",
        "http_floor:app",
        "--app-dir",
        str(HERE),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.returncode is not None:
                    raise RuntimeError("the bare ASGI app did not start") from None
                await asyncio.sleep(0.1)
        return await measure(
            f"http://127.0.0.1:{port}", "none", ["x"], connections=connections, seconds=seconds, path="/"
        )
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), timeout=10)


if __name__ == "__main__":
    print(json.dumps(asyncio.run(floor()), indent=2))
