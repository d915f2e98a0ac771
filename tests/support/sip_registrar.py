"""A SIP-over-WebSocket registrar for the browser phone's tests: it challenges REGISTER and
checks the digest as Asterisk does (RFC 2617, MD5, qop=auth), and passes every other message to
the other phones connected, so that two browser pages can call each other through it."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

REALM, USER, SECRET = "asterisk", "8101", "correct horse battery staple"  # the one phone
NONCE = "5f2b1c"


def md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


@dataclass
class Registrar:
    """Answers REGISTER over WebSocket as Asterisk does (a challenge, 200 for the right digest,
    the challenge again for a wrong one) and passes every other message to the other phones."""

    registered: list[str] = field(default_factory=list)  # the users it accepted, in order
    relayed: list[str] = field(default_factory=list)  # the first line of every message passed on
    sockets: list[web.WebSocketResponse] = field(default_factory=list)

    async def view(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse(protocols=("sip",))
        await socket.prepare(request)
        self.sockets.append(socket)
        async for message in socket:
            if message.type != WSMsgType.TEXT:
                continue
            if message.data.startswith("REGISTER "):
                await socket.send_str(self.answer(message.data))
                continue
            self.relayed.append(message.data.split("\r\n", 1)[0])
            for other in self.sockets:  # a call between two phones: passed on as it is
                if other is not socket and not other.closed:
                    await other.send_str(message.data)
        return socket

    def answer(self, request: str) -> str:
        head = request.split("\r\n\r\n", 1)[0].split("\r\n")
        headers = [line for line in head[1:] if line]
        value = {h.split(":", 1)[0].lower(): h.split(":", 1)[1].strip() for h in headers}
        echoed = [h for h in headers if h.split(":", 1)[0] in ("Via", "From", "Call-ID", "CSeq")]
        to = [f"To: {value['to']};tag=registrar"]
        challenge = f'WWW-Authenticate: Digest realm="{REALM}", nonce="{NONCE}", qop="auth"'
        authorization = value.get("authorization")
        if authorization is None:
            return _response("401 Unauthorized", [*echoed, *to, challenge])
        digest = dict(re.findall(r'(\w+)="?([^",]*)"?', authorization))
        ha2 = md5(f"REGISTER:{digest['uri']}")
        parts = [digest[k] for k in ("nonce", "nc", "cnonce", "qop")]
        expected = md5(":".join([md5(f"{digest['username']}:{REALM}:{SECRET}"), *parts, ha2]))
        if digest["username"] != USER or digest["response"] != expected:
            return _response("401 Unauthorized", [*echoed, *to, challenge])
        self.registered.append(digest["username"])
        return _response("200 OK", [*echoed, *to, f"Contact: {value['contact']};expires=600"])

    async def drop_everyone(self) -> None:
        """What a restart of the phone server does to its clients."""
        for socket in self.sockets:
            await socket.close()
        self.sockets.clear()


def _response(status: str, headers: list[str]) -> str:
    return "\r\n".join([f"SIP/2.0 {status}", *headers, "Content-Length: 0", "", ""])
