"""A loopback TCP relay a test can cut and restore: a network fault between
the engine and Asterisk's AMI, without touching Asterisk.

``TcpRelay`` runs on whatever event loop starts it (the e2e tests run it on
the engine's); ``ThreadedRelay`` gives it a loop and thread of its own, for
tests whose engine is another process (tests/faults).
"""

from __future__ import annotations

import asyncio
import threading


class TcpRelay:
    def __init__(self, target_port: int):
        self.target_port = target_port
        self.accepting = True
        self.writers: set[asyncio.StreamWriter] = set()
        self.server = None

    async def start(self) -> int:
        """Listen on a free loopback port; return it."""
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _handle(self, reader, writer):
        if not self.accepting:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self.writers |= {writer, up_writer}

        async def pipe(src, dst):
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def cut(self) -> None:
        """Close every relayed connection and refuse new ones."""
        self.accepting = False
        for writer in list(self.writers):
            writer.close()
        self.writers.clear()

    async def restore(self) -> None:
        self.accepting = True

    async def close(self) -> None:
        await self.cut()
        self.server.close()


class ThreadedRelay:
    """A :class:`TcpRelay` on a thread of its own, driven from blocking code."""

    def __init__(self, target_port: int):
        self._relay = TcpRelay(target_port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="tcp-relay")
        self._thread.start()
        self.port = self._run(self._relay.start())

    def _run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    def cut(self) -> None:
        self._run(self._relay.cut())

    def restore(self) -> None:
        self._run(self._relay.restore())

    def close(self) -> None:
        self._run(self._relay.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
