"""A TCP proxy that injects network faults between a client under test and a real server.

:class:`ChaosProxy` listens on ``127.0.0.1:<free port>`` and forwards every connection to a target
(the broker, PostgreSQL, a service). While traffic flows the test can switch faults on and off:

- ``latency_ms``: every chunk is delivered that much later, in each direction (like netem delay,
  the delay does not accumulate: chunks are pipelined, not sent one sleep after another);
- ``reset_all()``: every live connection is closed with a TCP RST on both sides, as a crashed
  load balancer or a NAT table flush would;
- ``hang(True)``: bytes stop moving but sockets stay open, as in a network partition; data read in
  the meantime is delivered when the hang ends (TCP would retransmit it), unless the peers gave up;
- ``refuse(True)``: new connections are accepted and reset at once (a dead backend behind a proxy).

The proxy runs its own event loop in a daemon thread, so sync tests, sync fixtures and async
tests (on any loop) can use it alike; every control method is thread-safe and returns once the
change is in force.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = ["ChaosProxy"]

_CHUNK = 64 * 1024
# Chunks buffered per direction before the reader stops reading (back-pressure to the sender).
_QUEUE_CHUNKS = 64
_LINGER_RST = struct.pack("ii", 1, 0)


def _rst(writer: asyncio.StreamWriter | None) -> None:
    """Close ``writer``'s socket with RST instead of FIN: linger on with a zero timeout."""
    if writer is None:
        return
    transport = writer.transport
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    transport.abort()


@dataclass(eq=False)
class _Link:
    """One proxied connection: the client's socket, the upstream socket and the pump tasks."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    was_reset: bool = False


class ChaosProxy:
    """Forward ``127.0.0.1:<port>`` to ``target_host:target_port`` with switchable faults."""

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        connect_timeout: float = 5.0,
        latency_ms: float = 0.0,
    ) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.listen_host = listen_host
        self.connect_timeout = connect_timeout
        self._requested_port = listen_port
        self.port: int = 0
        #: Delay added to every chunk in each direction; may be changed at any time.
        self.latency_ms: float = latency_ms
        #: Connections accepted so far (refused ones included), for assertions.
        self.accepted = 0
        self._refusing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._handlers: set[asyncio.Task[Any]] = set()
        # Set while bytes may flow; cleared by hang(True). Created inside the proxy's loop.
        self._flowing: asyncio.Event | None = None

    @classmethod
    def for_url(cls, url: str, **kwargs: Any) -> ChaosProxy:
        """A proxy to the host:port of ``url`` (amqp://, postgresql://, http://...)."""
        parts = urlsplit(url)
        default = {"amqp": 5672, "amqps": 5671, "postgresql": 5432, "postgres": 5432, "http": 80}
        port = parts.port or default.get(parts.scheme.split("+")[0], 0)
        if not parts.hostname or not port:
            raise ValueError(f"cannot tell host and port of {url!r}")
        return cls(parts.hostname, port, **kwargs)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> ChaosProxy:
        """Start listening (in the proxy's own thread); returns once connections are accepted."""
        if self._thread is not None:
            return self
        ready: Future[int] = Future()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="chaos-proxy", daemon=True)
        self._thread.start()
        self.port = ready.result(timeout=10)
        return self

    def _run(self, ready: Future[int]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            self._flowing = asyncio.Event()
            self._flowing.set()
            self._server = loop.run_until_complete(
                asyncio.start_server(self._handle, self.listen_host, self._requested_port)
            )
            ready.set_result(self._server.sockets[0].getsockname()[1])
        except BaseException as exc:
            ready.set_exception(exc)
            loop.close()
            return
        try:
            loop.run_forever()
        finally:
            loop.close()

    def stop(self) -> None:
        """Stop listening, reset every live connection and end the proxy's thread."""
        if self._thread is None or self._loop is None:
            return
        with contextlib.suppress(RuntimeError):  # loop already gone
            self._call(self._ashutdown())
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._thread = None
        self._loop = None

    async def _ashutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._areset_all()
        # Let the connection handlers see their resets and finish, so that closing the loop
        # does not destroy pending tasks (and warn about it).
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=2)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    def __enter__(self) -> ChaosProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> ChaosProxy:
        # start() only blocks for the proxy thread's bind, milliseconds.
        return self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # stop() blocks until the proxy thread has reset its connections; run it off our loop
        # so that a client on this loop can still process the resets meanwhile.
        await asyncio.to_thread(self.stop)

    # -- addresses ---------------------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        return self.listen_host, self.port

    def url_for(self, url: str) -> str:
        """``url`` (amqp://user:pass@host:port/vhost?query) with host:port replaced by the proxy's.

        User, password, vhost and query are kept byte for byte (no re-encoding of the vhost).
        """
        if not self.port:
            raise RuntimeError("start() the proxy before asking for its URL")
        parts = urlsplit(url)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@" if userinfo else ""
        return urlunsplit(parts._replace(netloc=f"{netloc}{self.listen_host}:{self.port}"))

    # -- faults (thread-safe) ----------------------------------------------------------------

    @property
    def connection_count(self) -> int:
        """Live proxied connections."""
        return len(self._links)

    def reset_all(self) -> int:
        """Reset (RST) every live connection on both sides; returns how many were reset.

        New connections are still accepted afterwards, so a client that reconnects gets through.
        """
        return self._call(self._areset_all())

    def hang(self, on: bool = True) -> None:
        """Stop (``True``) or resume (``False``) moving bytes, keeping all connections open."""

        def switch() -> None:
            assert self._flowing is not None
            if on:
                self._flowing.clear()
            else:
                self._flowing.set()

        self._call_soon(switch)

    def refuse(self, on: bool = True) -> None:
        """Reset new connections right after accepting them (``True``), or forward them again."""
        self._refusing = on

    def heal(self) -> None:
        """Switch every fault off: no latency, no hang, no refusal."""
        self.latency_ms = 0.0
        self.refuse(False)
        self.hang(False)

    # -- plumbing ----------------------------------------------------------------------------

    def _call(self, coro: Any) -> Any:
        if self._loop is None:
            coro.close()
            raise RuntimeError("the proxy is not running")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    def _call_soon(self, fn: Any) -> None:
        async def run() -> None:
            fn()

        self._call(run())

    async def _areset_all(self) -> int:
        links = list(self._links)
        for link in links:
            link.was_reset = True
            _rst(link.client)
            _rst(link.upstream)
            for task in link.tasks:
                task.cancel()
        self._links.difference_update(links)
        return len(links)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self._refusing:
            _rst(writer)
            return
        link = _Link(client=writer)
        self._links.add(link)
        handler = asyncio.current_task()
        if handler is not None:
            self._handlers.add(handler)
            handler.add_done_callback(self._handlers.discard)
        try:
            try:
                up_reader, up_writer = await asyncio.wait_for(
                    asyncio.open_connection(self.target_host, self.target_port), self.connect_timeout
                )
            except (OSError, TimeoutError):
                # The target is down: the client sees what it would see at a dead backend.
                _rst(writer)
                return
            if link.was_reset:  # reset_all() ran while we were connecting
                _rst(up_writer)
                return
            link.upstream = up_writer
            link.tasks = [
                asyncio.create_task(self._pipe(reader, up_writer, link)),
                asyncio.create_task(self._pipe(up_reader, writer, link)),
            ]
            await asyncio.gather(*link.tasks, return_exceptions=True)
        finally:
            self._links.discard(link)
            if not link.was_reset:
                for side in (writer, link.upstream):
                    if side is not None:
                        side.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: _Link) -> None:
        """Move bytes one way: a reader task stamps chunks, this task delivers them when due.

        Queue items are ``(due, data)``: ``b""`` is an orderly EOF, ``None`` a broken connection.
        """
        assert self._flowing is not None
        flowing = self._flowing
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes | None]] = asyncio.Queue(_QUEUE_CHUNKS)

        async def read() -> None:
            while True:
                data: bytes | None
                try:
                    data = await reader.read(_CHUNK)
                except OSError:
                    data = None
                # The due time is fixed on arrival: a latency change applies to later chunks.
                await queue.put((loop.time() + self.latency_ms / 1000.0, data))
                if not data:
                    return

        reading = asyncio.create_task(read())
        try:
            while True:
                due, data = await queue.get()
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                await flowing.wait()
                if data is None:
                    raise ConnectionResetError("peer reset the connection")
                if not data:
                    # Orderly EOF: pass the half-close on; the other direction carries on.
                    if writer.can_write_eof():
                        with contextlib.suppress(OSError):
                            writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()
        except OSError:
            # One side reset or broke: make the other side see a reset too, as it would without us.
            if not link.was_reset:
                link.was_reset = True
                _rst(link.client)
                _rst(link.upstream)
                for task in link.tasks:
                    if task is not asyncio.current_task():
                        task.cancel()
        finally:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reading
