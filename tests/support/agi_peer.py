"""Playing Asterisk's side of a FastAGI connection in tests."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
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


# An inbound FastAGI request as Asterisk opens it: a known caller with a Chinese name.
REQUEST = (
    "agi_network: yes\n"
    "agi_network_script: inbound\n"
    "agi_request: agi://127.0.0.1/inbound\n"
    "agi_channel: PJSIP/trunk-00000001\n"
    "agi_uniqueid: 1700000000.1\n"
    "agi_callerid: +8613800138000\n"
    "agi_calleridname: 张伟\n"
    "\n"
).encode()
KEY = "test-fastagi-key"  # what a test's FastAgiServer is given, and its Asterisk holds
CHALLENGE = re.compile(rb'^GET FULL VARIABLE "\$\{SHA1\(\$\{CTI_AGI_KEY\}:([0-9a-f]{32})\)\}"\n$')


def challenge_answer(line: bytes, key: str = KEY) -> bytes:
    """What Asterisk answers to the server's challenge, holding ``key`` as CTI_AGI_KEY."""
    match = CHALLENGE.match(line)
    assert match, f"expected the server's challenge first, got {line!r}"
    digest = hashlib.sha1(f"{key}:{match.group(1).decode()}".encode()).hexdigest()
    return b"200 result=1 (" + digest.encode() + b")\n"


async def answer_challenge(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    timeout: float = 5.0,
    key: str = KEY,
) -> bool:
    """Answer the server's first command as our Asterisk does: the key hashed with its nonce.
    False if the server closed instead (a refused connection)."""
    line = await asyncio.wait_for(reader.readline(), timeout)
    if not line:
        return False
    writer.write(challenge_answer(line, key))
    await writer.drain()
    return True


async def send_request(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    header: bytes,
    timeout: float = 5.0,
    key: str = KEY,
) -> bool:
    """A FastAGI request header, then the challenge answered: the route runs next.
    False if the server closed instead."""
    writer.write(header)
    await writer.drain()
    return await answer_challenge(reader, writer, timeout, key)
