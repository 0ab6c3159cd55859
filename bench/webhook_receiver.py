"""The bench's webhook receiver: a bare ASGI app under uvicorn, in a process of its own.

It stands in for a subscriber's server, so what it costs is not the platform's: no framework, and
its own process, so the bench's probe and inbox watcher (which take CPU in bursts while the stalls
arrive) never delay the moment it stamps. It stamps each `stock.stalled.v1` POST (by the event's
`id`) when the request reaches the app, and answers `GET /arrivals` with every stamp so far
(event id -> epoch seconds).

    python -m uvicorn webhook_receiver:app --app-dir bench --lifespan off --port N   # as Receiver does
"""

from __future__ import annotations

import json
import time
from typing import Any

STALLED = "stock.stalled.v1"
OK = b'{"ok":"yes"}'

arrivals: dict[str, float] = {}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """HTTP only: uvicorn runs it with `--lifespan off`."""
    at = time.time()
    if scope["method"] == "POST":
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        event = json.loads(body)
        if event.get("type") == STALLED:
            arrivals.setdefault(event["id"], at)
        answer = OK
    else:
        answer = json.dumps(arrivals).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer})
