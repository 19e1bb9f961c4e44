"""A test server on loopback with its own event loop in a thread, so sync and async tests can use
it alike: the base of the fake Messages API and the fake HTTP proxy."""

from __future__ import annotations

import abc
import asyncio
import contextlib
import threading
from typing import Self


class LoopbackServer(abc.ABC):
    """Subclasses give `_listen` (start the asyncio server) and handle its connections; writers
    they add to `_writers` are closed by `stop`."""

    thread_name = "loopback-server"

    def __init__(self) -> None:
        self.port = 0  # a TCP server's port, once started
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @abc.abstractmethod
    async def _listen(self) -> asyncio.AbstractServer:
        """Start the server (on the thread's loop) and return it."""

    def start(self) -> Self:
        ready = threading.Event()
        loop = self._loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            self._server = loop.run_until_complete(self._listen())
            address = self._server.sockets[0].getsockname()
            if isinstance(address, tuple):
                self.port = address[1]
            ready.set()
            loop.run_forever()

        self._thread = threading.Thread(target=run, name=self.thread_name, daemon=True)
        self._thread.start()
        ready.wait(5)
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        loop = self._loop

        async def shutdown() -> None:
            assert self._server is not None
            self._server.close()
            for w in list(self._writers):
                w.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), loop)
        assert self._thread is not None
        self._thread.join(5)
        loop.close()
        self._loop = None
