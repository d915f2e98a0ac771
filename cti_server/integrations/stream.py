"""The event stream: ``GET /api/events/stream``, a websocket for other systems.

Authentication is a CRM API token (``cti crm token``), sent as ``Authorization: Bearer ...`` on
the upgrade request, or, for clients that cannot set headers, as the first message
``{"type": "auth", "token": "..."}`` within ``AUTH_SECONDS``. Never in the address: addresses
end up in access logs and proxies' logs, so a ``token`` query parameter is refused. The token
is checked again every ``recheck_seconds``: a revoked token or disabled user is disconnected
(close code 4401), a changed role or extension applies from then on.

Topics are glob patterns over event types, given as ``?topics=call.*,complaint.detected`` or by
``{"type": "subscribe", "topics": [...]}`` (which replaces them). Nothing is sent before a
subscription. Events are sent as their public envelopes (their ``type`` has a dot); the
server's own messages (``welcome``, ``subscribed``, ``dropped``, ``error``) have none.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web

from cti_server.integrations.access import BadTopics, Topics, Viewer
from cti_server.integrations.translate import Outgoing, Receiver

log = logging.getLogger(__name__)

AUTH_SECONDS = 10.0
SEND_SECONDS = 5.0
MAX_MESSAGE = 16 * 1024
QUEUE_SIZE = 1000
UNAUTHORIZED = 4401


@dataclass(frozen=True, slots=True)
class TokenUser:
    username: str
    viewer: Viewer


Authenticate = Callable[[str], Awaitable[TokenUser | None]]
"""A bearer token → its active user, or None."""


class StreamClient:
    """One socket: what it may see and asked for, queued (the oldest dropped when full)."""

    def __init__(self, user: TokenUser, topics: Topics | None, maxsize: int = QUEUE_SIZE) -> None:
        self.user = user
        self.topics = topics
        self.queue: asyncio.Queue[Outgoing] = asyncio.Queue(maxsize)
        self.dropped = 0

    def offer(self, outgoing: Outgoing) -> None:
        if self.topics is None or not self.topics.match(outgoing.type):
            return
        if not self.user.viewer.may_see(outgoing.agents):
            return
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(outgoing)


def bearer(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and 0 < len(token) < 200 else None


def _topics_of(raw: str) -> Topics | None:
    return Topics.parse([p.strip() for p in raw.split(",")]) if raw else None


async def stream_view(
    request: web.Request,
    authenticate: Authenticate,
    receivers: set[Receiver],
    recheck_seconds: float,
) -> web.StreamResponse:
    if {"token", "access_token"} & set(request.query):
        return _refused(400, "send the token in the Authorization header or the first message")
    try:
        topics = _topics_of(request.query.get("topics", ""))
    except BadTopics as exc:
        return _refused(400, str(exc))
    token = bearer(request)
    user = await authenticate(token) if token is not None else None
    if token is not None and user is None:
        return _refused(401, "the token is not valid")
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=MAX_MESSAGE)
    await ws.prepare(request)
    if user is None:
        token, user = await _first_message_auth(ws, authenticate)
    if token is None or user is None:
        await ws.close(code=UNAUTHORIZED, message=b"a valid token is required")
        return ws
    client = StreamClient(user, topics)
    await _send(ws, _welcome(client))
    receivers.add(client)
    sender = asyncio.create_task(_send_events(ws, client, authenticate, token, recheck_seconds))
    try:
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                break
            await _send(ws, _subscribe(client, message.data))
    finally:
        receivers.discard(client)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
    return ws


def _refused(status: int, message: str) -> web.Response:
    return web.json_response({"error": "refused", "message": message}, status=status)


def _welcome(client: StreamClient) -> dict[str, Any]:
    return {
        "type": "welcome",
        "user": client.user.username,
        "role": client.user.viewer.role,
        "topics": list(client.topics.patterns) if client.topics else [],
    }


async def _first_message_auth(
    ws: web.WebSocketResponse, authenticate: Authenticate
) -> tuple[str | None, TokenUser | None]:
    try:
        message = await ws.receive(timeout=AUTH_SECONDS)
    except TimeoutError:
        return None, None
    if message.type != WSMsgType.TEXT:
        return None, None
    try:
        body = json.loads(message.data)
    except (ValueError, RecursionError):  # not JSON, a number too long, nested too deep
        return None, None
    token = body.get("token") if isinstance(body, dict) and body.get("type") == "auth" else None
    if not isinstance(token, str) or not 0 < len(token) < 200:
        return None, None
    return token, await authenticate(token)


def _subscribe(client: StreamClient, raw: str) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        body = None
    if not isinstance(body, dict) or body.get("type") != "subscribe":
        return {"type": "error", "message": 'expected {"type": "subscribe", "topics": [...]}'}
    patterns = body.get("topics")
    if not isinstance(patterns, list):
        return {"type": "error", "message": "topics: a list of patterns, e.g. ['call.*']"}
    try:
        client.topics = Topics.parse(patterns)
    except BadTopics as exc:
        return {"type": "error", "message": str(exc)}
    return {"type": "subscribed", "topics": list(client.topics.patterns)}


async def _send_events(
    ws: web.WebSocketResponse,
    client: StreamClient,
    authenticate: Authenticate,
    token: str,
    recheck_seconds: float,
) -> None:
    """Until cancelled: queued events out; the token checked again while the queue is quiet
    and at least every ``recheck_seconds``."""
    loop = asyncio.get_running_loop()
    checked = loop.time()
    reported = 0
    while not ws.closed:
        try:
            outgoing: Outgoing | None = await asyncio.wait_for(client.queue.get(), recheck_seconds)
        except TimeoutError:
            outgoing = None
        if loop.time() - checked >= recheck_seconds:
            checked = loop.time()
            user = await authenticate(token)
            if user is None:
                await ws.close(code=UNAUTHORIZED, message=b"the token is no longer valid")
                return
            client.user = user
            if outgoing is not None and not user.viewer.may_see(outgoing.agents):
                outgoing = None
        if client.dropped > reported:
            await _send(ws, {"type": "dropped", "events": client.dropped - reported})
            reported = client.dropped
        if outgoing is not None:
            await _send_text(ws, outgoing.text)


async def _send(ws: web.WebSocketResponse, message: dict[str, Any]) -> None:
    await _send_text(ws, json.dumps(message))


async def _send_text(ws: web.WebSocketResponse, text: str) -> None:
    if ws.closed:
        return
    try:
        await asyncio.wait_for(ws.send_str(text), SEND_SECONDS)
    except (ConnectionError, TimeoutError, RuntimeError) as exc:
        log.info("event stream: closing a client that cannot take events: %s", exc)
        await ws.close()
