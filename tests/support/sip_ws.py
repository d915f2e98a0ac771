"""A SIP REGISTER over a secure websocket, as a browser phone sends it (RFC 7118), with the
digest answer worked out from the password's hash: enough to tell who Asterisk lets in."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import secrets
from collections.abc import AsyncIterator, Callable

import aiohttp

from cti_server.asterisk.sip_digests import ha1 as password_ha1


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def _challenge(response: str) -> dict[str, str]:
    """The MD5 ``WWW-Authenticate`` challenge's fields."""
    for line in response.split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip().lower() == "www-authenticate" and "md5" in value.lower():
            return dict(re.findall(r'(\w+)="?([^",]*)"?', value.split("Digest", 1)[1]))
    raise AssertionError(f"no MD5 digest challenge in:\n{response}")


@contextlib.asynccontextmanager
async def sip_websocket(url: str) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    """A ``sip`` websocket to Asterisk's WSS listener (its self-signed certificate unchecked).

    Closing the session while the websocket still holds its connection aborts the TLS
    connection: a graceful TLS shutdown left pending would outlive the test's event loop.
    """
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(url, protocols=("sip",), ssl=False)
        try:
            yield ws
        finally:
            await session.close()
            await ws.close()


async def _final_response(ws: aiohttp.ClientWebSocketResponse, cseq: int, timeout: float) -> str:
    """The final response to our REGISTER of ``cseq`` (Asterisk's own requests are skipped)."""
    async with asyncio.timeout(timeout):
        while True:
            message = await ws.receive_str()
            if not message.startswith("SIP/2.0 "):
                continue
            status = int(message.split(" ", 2)[1])
            if status >= 200 and re.search(rf"^CSeq:\s*{cseq} REGISTER", message, re.M | re.I):
                return message


async def register(
    url: str, extension: str, username: str, secret: str, timeout: float = 10.0
) -> int:
    """REGISTER ``extension`` over ``url`` (wss://.../ws) with ``username``'s ``secret``;
    the final status (200: registered, 401/403: refused)."""
    async with sip_websocket(url) as ws:
        return await _register_on(
            ws, extension, username, lambda realm: password_ha1(username, secret, realm), timeout
        )


@contextlib.asynccontextmanager
async def registered(
    url: str, extension: str, ha1: str, timeout: float = 10.0
) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    """``extension`` registered over ``url`` with the HA1 of its password (as the desk page's
    phone registers) while the block runs: Asterisk drops the contact when the websocket
    closes. Calls to it ring (INVITEs arrive on the websocket, unanswered)."""
    async with sip_websocket(url) as ws:
        status = await _register_on(ws, extension, extension, lambda _realm: ha1, timeout)
        assert status == 200, f"{extension} not registered: {status}"
        yield ws


async def _register_on(
    ws: aiohttp.ClientWebSocketResponse,
    extension: str,
    username: str,
    ha1_of: Callable[[str], str],
    timeout: float,
) -> int:
    """The REGISTER exchange on an open websocket: the digest answered with ``ha1_of(realm)``."""
    call_id, tag = secrets.token_hex(8), secrets.token_hex(4)
    uri = "sip:127.0.0.1"

    def request(cseq: int, authorization: str = "") -> str:
        return (
            f"REGISTER {uri} SIP/2.0\r\n"
            f"Via: SIP/2.0/WSS phone.invalid;branch=z9hG4bK{secrets.token_hex(8)}\r\n"
            "Max-Forwards: 70\r\n"
            f"To: <sip:{extension}@127.0.0.1>\r\n"
            f"From: <sip:{extension}@127.0.0.1>;tag={tag}\r\n"
            f"Call-ID: {call_id}\r\n"
            f"CSeq: {cseq} REGISTER\r\n"
            f"Contact: <sip:{extension}@phone.invalid;transport=ws>;expires=60\r\n"
            f"{authorization}"
            "Expires: 60\r\n"
            "Content-Length: 0\r\n\r\n"
        )

    await ws.send_str(request(1))
    first = await _final_response(ws, 1, timeout)
    if not first.startswith("SIP/2.0 401"):
        return int(first.split(" ", 2)[1])
    fields = _challenge(first)
    cnonce, nc = secrets.token_hex(8), "00000001"
    ha1 = ha1_of(fields["realm"])
    ha2 = _md5(f"REGISTER:{uri}")
    if "qop" in fields:
        answer = _md5(f"{ha1}:{fields['nonce']}:{nc}:{cnonce}:auth:{ha2}")
        qop = f',qop=auth,nc={nc},cnonce="{cnonce}"'
    else:
        answer, qop = _md5(f"{ha1}:{fields['nonce']}:{ha2}"), ""
    opaque = f',opaque="{fields["opaque"]}"' if "opaque" in fields else ""
    authorization = (
        f'Authorization: Digest username="{username}",realm="{fields["realm"]}",'
        f'nonce="{fields["nonce"]}",uri="{uri}",response="{answer}",algorithm=MD5'
        f"{qop}{opaque}\r\n"
    )
    await ws.send_str(request(2, authorization))
    return int((await _final_response(ws, 2, timeout)).split(" ", 2)[1])
