"""A TCP proxy on loopback whose link can be cut and restored: a network fault on demand.

It can also keep every byte each way (``record``), to count what really went over the wire,
and hand the target's bytes to the client in small pieces (``piece``), each read on its own,
so that a multi-byte character or a message is split across the client's reads.
"""

from __future__ import annotations

import asyncio
import contextlib

from tests.support.ports import free_port


class TcpProxy:
    def __init__(
        self, target_host: str, target_port: int, *, record: bool = False, piece: int = 0
    ) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self.cut_off = False
        self.record = record
        self.piece = piece
        self.sent = bytearray()  # with record: every byte clients sent the target
        self.received = bytearray()  # with record: every byte the target sent back

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def cut(self) -> None:
        """Drop every open connection and refuse new ones, as a dead network would."""
        self.cut_off = True
        for writer in list(self._links):
            writer.transport.abort()
        self._links.clear()

    def restore(self) -> None:
        self.cut_off = False

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut_off:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._links.update((writer, up_writer))
        await asyncio.gather(
            self._pipe(reader, up_writer, self.sent, 0),
            self._pipe(up_reader, writer, self.received, self.piece),
        )

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        kept: bytearray,
        piece: int,
    ) -> None:
        try:
            while data := await reader.read(65536):
                if self.record:
                    kept.extend(data)
                step = piece or len(data)
                for at in range(0, len(data), step):
                    writer.write(data[at : at + step])
                    await writer.drain()
                    if piece:
                        await asyncio.sleep(0)  # one loop turn: the client reads this piece alone
        except (ConnectionError, OSError):
            pass
        finally:
            self._links.discard(writer)
            with contextlib.suppress(Exception):
                writer.transport.abort()
