"""Playing Asterisk's side of a FastAGI connection in tests."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


@asynccontextmanager
async def connection(port: int) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def read_until_closed(reader: asyncio.StreamReader, timeout: float) -> bytes:
    """Everything the server still sends before it closes the connection."""
    try:
        return await asyncio.wait_for(reader.read(), timeout)
    except ConnectionResetError:
        return b""


_IN_STEP = re.compile(rb'^GET FULL VARIABLE "([0-9a-f]{32})"\n$')


async def answer_in_step(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, timeout: float = 5.0
) -> bool:
    """Answer the server's first command as Asterisk does: the token it asks for, evaluated.
    False if the server closed instead (a refused connection)."""
    line = await asyncio.wait_for(reader.readline(), timeout)
    if not line:
        return False
    match = _IN_STEP.match(line)
    assert match, f"expected the in-step check first, got {line!r}"
    writer.write(b"200 result=1 (" + match.group(1) + b")\n")
    await writer.drain()
    return True


async def send_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, header: bytes, timeout: float = 5.0
) -> bool:
    """A FastAGI request header, then the in-step check answered: the route runs next.
    False if the server closed instead."""
    writer.write(header)
    await writer.drain()
    return await answer_in_step(reader, writer, timeout)
