"""The websocket hub: one socket per browser page, pushed to, and a router of its messages.

Opening a socket needs an Origin of this site (or one configured), a live session, and the role
of the view asked for (``desk``: agent, ``wallboard``: supervisor). Each message names a type
whose handler declares the least role and the views it serves; anything else is refused. The
socket closes (code 4401) as soon as its session ends: sign-out, revoke or idle timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import json.encoder
import logging
import operator
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from itertools import islice, repeat
from typing import Any

from aiohttp import WSMsgType, web
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agent_ui.auth import SESSION_COOKIE, STORE
from agent_ui.deps import DEPS
from agent_ui.sessions import SessionStore, UiSession
from crm_core.access import least
from cti_server.control import ControlError

log = logging.getLogger(__name__)

VIEW_ROLES = {"desk": least("desk.use"), "wallboard": least("wallboard.watch")}
SESSION_ENDED = 4401
SEND_TIMEOUT = 2.0  # seconds a socket may take to accept a message before it is dropped
FRAME_HEADER = 14  # bytes at most a websocket frame adds to its payload
MAX_MESSAGE = 64 * 1024


class UiError(Exception):
    """A refused request from a browser; the message is shown to the user."""


@dataclass(eq=False)
class Connection:
    ws: web.WebSocketResponse
    session: UiSession
    view: str
    transport: asyncio.BaseTransport | None = None  # the socket's, for its write buffer


def _takes_at_once(connection: Connection, text: str) -> bool:
    """Whether the socket's write buffer takes ``text`` and stays under its low-water mark: the
    writer is not paused before the write, nor after it, so the send waits for nothing a slow
    browser could hold up and needs no timer (one per message costs a pop at 1,000 agents)."""
    transport = connection.transport
    if not isinstance(transport, asyncio.WriteTransport) or transport.is_closing():
        return False
    low, _high = transport.get_write_buffer_limits()
    return transport.get_write_buffer_size() + 4 * len(text) + FRAME_HEADER <= low


_COMPACT = json.JSONEncoder(separators=(",", ":"))  # no blanks: the browser needs none


def _not_json(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# The standard library's C encoder, made once rather than per message as ``json.dumps`` makes
# it (at 1,000 rings at once, some 2 us of each pop); the same output. Without a check
# for cycles: the messages are the server's own dicts and lists, never cyclic.
_C_ENCODER = getattr(json.encoder, "c_make_encoder", None)
_ESCAPED = json.encoder.encode_basestring_ascii  # strings as json.dumps writes them
_COMPACT_C = (
    None
    if _C_ENCODER is None
    else _C_ENCODER(None, _not_json, _ESCAPED, None, ":", ",", False, False, True)
)


def compact_json(value: Any) -> str:
    """``value`` as JSON without the blanks :func:`json.dumps` puts after ``,`` and ``:`` (a
    pop is a tenth shorter on the wire and to parse)."""
    if _COMPACT_C is None:  # a Python without the C encoder
        return _COMPACT.encode(value)
    return "".join(_COMPACT_C(value, 0))


class Prepared(dict[str, Any]):
    """A message some of whose fields were encoded ahead of time (a pop's customer record, read
    and encoded while the caller was still in the IVR): sending it encodes only the others.

    Its values are replaced, never changed in place (as every message's here); one of the
    fields encoded ahead that was replaced or removed since is noticed, and the whole message
    is encoded again.

    No ``__dict__`` and no copy of its own fields: a pop on show is kept by its desk, and at
    1,000 rings at once every object each keeps is one the garbage collector walks (two of a
    pop's four, some 2 us of it)."""

    # what was encoded ahead, its JSON object's members (no braces), and how many of its first
    # fields are its own, not encoded ahead, as made (:meth:`made`; 0: not made so)
    __slots__ = ("_ahead", "_ahead_members", "_own_count")

    def __init__(self, fields: dict[str, Any], ahead: dict[str, Any], ahead_json: str) -> None:
        super().__init__(fields)
        self._own_count = 0
        self._ahead = ahead
        self._ahead_members = ahead_json.strip()[1:-1]

    @classmethod
    def made(cls, own: dict[str, Any], ahead: dict[str, Any], ahead_members: str) -> Prepared:
        """A message of the fields ``own``, then ``ahead`` (whose JSON object's members, no
        braces, are ``ahead_members``), made without copying what was encoded ahead twice;
        :meth:`as_made` encodes it as it is sent the moment it is made. ``own`` and ``ahead``
        have no field in common."""
        message = cls.__new__(cls)
        dict.__init__(message, own)
        dict.update(message, ahead)
        message._ahead, message._ahead_members = ahead, ahead_members
        message._own_count = len(own)
        return message

    @property
    def own(self) -> dict[str, Any] | None:
        """Its own fields, not encoded ahead, as :meth:`made` made them (None: not made so)."""
        if not self._own_count:
            return None
        return dict(islice(self.items(), self._own_count))

    def with_fields(self, **fields: Any) -> Prepared:
        """A copy with ``fields`` added, sharing what was encoded ahead."""
        copy = Prepared.__new__(Prepared)
        dict.__init__(copy, self, **fields)
        copy._own_count, copy._ahead, copy._ahead_members = 0, self._ahead, self._ahead_members
        return copy

    def to_json(self) -> str:
        ahead = self._ahead
        # each field encoded ahead still there, the very same object (map: no Python loop)
        if not all(map(operator.is_, map(self.get, ahead, repeat(_GONE)), ahead.values())):
            return compact_json(self)
        return self.joined(compact_json({k: v for k, v in self.items() if k not in ahead}))

    def as_made(self, **fields: Any) -> str:
        """The JSON of a message just :meth:`made` (none of its fields replaced or removed
        yet: it is being sent), with ``fields`` added: only its own few fields are encoded,
        with no check of the others (at 1,000 rings at once, each check costs)."""
        own = self.own
        if own is None:
            return encoded(self.with_fields(**fields))
        return self.joined(compact_json({**own, **fields} if fields else own))

    def joined(self, rest: str) -> str:
        """``rest`` (an object's JSON) and the members encoded ahead, as one object."""
        if not self._ahead_members:
            return rest
        if rest == "{}":
            return "{" + self._ahead_members + "}"
        return "".join((rest[:-1], ",", self._ahead_members, "}"))  # the record copied once


_GONE = object()


def with_fields(message: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A copy of ``message`` with ``fields`` added (what was encoded ahead stays so)."""
    if isinstance(message, Prepared):
        return message.with_fields(**fields)
    return {**message, **fields}


def encoded(message: dict[str, Any]) -> str:
    """A message's JSON text, with what was encoded ahead of time (:class:`Prepared`)."""
    return message.to_json() if isinstance(message, Prepared) else compact_json(message)


def encoded_as_made(message: dict[str, Any], **fields: Any) -> str:
    """The JSON text of ``message``, made just now and sent at once, with ``fields`` added."""
    if isinstance(message, Prepared):
        return message.as_made(**fields)
    return compact_json({**message, **fields} if fields else message)


Reply = dict[str, Any] | None
MessageHandler = Callable[[Connection, dict[str, Any]], Awaitable[Reply]]
Greeter = Callable[[Connection], Awaitable[Iterable[dict[str, Any]]]]


@dataclass(frozen=True)
class _Route:
    role: str
    views: frozenset[str]
    handler: MessageHandler


@dataclass
class Hub:
    """Every open socket, by session and view; sends never block one another for long.

    The sockets are also indexed by view, and the desks by extension, so that a pop finds its
    desk without a scan of every socket (1,000 agents signed in, 1,000 calls ringing): sockets
    come and go by :meth:`add` and :meth:`discard`, never by ``connections`` itself."""

    store: SessionStore
    connections: set[Connection] = field(default_factory=set)
    _views: dict[str, set[Connection]] = field(default_factory=dict)  # view -> its sockets
    _desks: dict[str, set[Connection]] = field(default_factory=dict)  # extension -> its desks
    _routes: dict[str, _Route] = field(default_factory=dict)
    _greeters: dict[str, Greeter] = field(default_factory=dict)
    _closing: set[asyncio.Task[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.store.on_revoke(self._session_ended)
        # every page's keep-alive (static/common.js): a watching supervisor is active too
        self.handle("activity", "agent", VIEW_ROLES, self._activity)

    async def _activity(self, _connection: Connection, _message: dict[str, Any]) -> Reply:
        return None  # dispatch counted it: the idle clock starts again

    def handle(self, kind: str, role: str, views: Iterable[str], handler: MessageHandler) -> None:
        """Messages of type ``kind`` go to ``handler`` for sessions of ``role`` or above."""
        self._routes[kind] = _Route(role, frozenset(views), handler)

    def greet(self, view: str, greeter: Greeter) -> None:
        """What a socket of ``view`` is sent as it opens (the current state, a pop in progress)."""
        self._greeters[view] = greeter

    async def welcome(self, connection: Connection) -> None:
        greeter = self._greeters.get(connection.view)
        if greeter is not None:
            for message in await greeter(connection):
                await self.send(connection, message)

    # -- the sockets open ---------------------------------------------------------------------

    def add(self, connection: Connection) -> None:
        self.connections.add(connection)
        self._views.setdefault(connection.view, set()).add(connection)
        extension = connection.session.extension
        if connection.view == "desk" and extension is not None:
            self._desks.setdefault(extension, set()).add(connection)

    def discard(self, connection: Connection) -> None:
        self.connections.discard(connection)
        self._views.get(connection.view, set()).discard(connection)
        extension = connection.session.extension
        if connection.view != "desk" or extension is None:
            return
        desks = self._desks.get(extension)
        if desks is not None:
            desks.discard(connection)
            if not desks:
                del self._desks[extension]

    def desks_of(self, extension: str) -> list[Connection]:
        """The desk sockets signed in with ``extension`` (an extension's session cannot change
        it: a user given another extension is signed out)."""
        return list(self._desks.get(extension, ()))

    def desks_signed_in(self, extension: str) -> bool:
        return extension in self._desks

    def user_at(self, extension: str) -> int | None:
        """The user signed in at the desk of ``extension``, if any."""
        for connection in self._desks.get(extension, ()):
            return connection.session.user_id
        return None

    def wallboards(self) -> list[Connection]:
        return list(self._views.get("wallboard", ()))

    # -- sending ------------------------------------------------------------------------------

    async def send(self, connection: Connection, message: dict[str, Any]) -> None:
        await self._send_text(connection, encoded(message))

    async def _send_text(self, connection: Connection, text: str) -> None:
        await self._write(connection, text, at_once=_takes_at_once(connection, text))

    async def _write(self, connection: Connection, text: str, *, at_once: bool) -> None:
        """``at_once``: the socket takes ``text`` at once (:func:`_takes_at_once`)."""
        if connection.ws.closed:
            return
        try:
            if at_once:
                await connection.ws.send_str(text)
            else:
                async with asyncio.timeout(SEND_TIMEOUT):  # no task of its own, unlike wait_for
                    await connection.ws.send_str(text)
        except (ConnectionError, TimeoutError, RuntimeError) as exc:
            log.info("dropping a websocket of %s: %s", connection.session.username, exc)
            self.discard(connection)

    async def send_all(self, connections: Iterable[Connection], message: dict[str, Any]) -> int:
        """One message to many sockets, encoded once."""
        targets = list(connections)
        if not targets:
            return 0
        text = encoded(message)
        if len(targets) == 1:  # a desk's message: no gather, no task
            await self._send_text(targets[0], text)
        else:
            await asyncio.gather(*(self._send_text(c, text) for c in targets))
        return len(targets)

    async def to_extension(self, extension: str, message: dict[str, Any]) -> int:
        """To the desks signed in with ``extension``: an agent's pops go to nobody else."""
        return await self.send_all(self.desks_of(extension), message)

    async def to_extension_at_once(self, extension: str, message: dict[str, Any]) -> bool:
        """Like :meth:`to_extension`, if every desk of ``extension`` takes the message into its
        write buffer at once (so that the send waits for no browser: True, also when no desk
        is signed in); else nothing is sent and the answer is False. A caller that sends in
        order, one message after another, sends this way what cannot hold it up, and leaves
        the rest to a task of its own."""
        if extension not in self._desks:
            return True
        return await self.text_to_extension_at_once(extension, encoded(message))

    async def text_to_extension_at_once(self, extension: str, text: str) -> bool:
        """:meth:`to_extension_at_once` of a message already encoded (``text``)."""
        desks = self._desks.get(extension)
        if not desks:
            return True
        if len(desks) == 1:  # an agent's one tab, the common case: no generator, no copy
            (connection,) = desks
            if not _takes_at_once(connection, text):
                return False
            await self._write(connection, text, at_once=True)
            return True
        if not all(_takes_at_once(connection, text) for connection in desks):
            return False
        for connection in list(desks):
            await self._write(connection, text, at_once=True)
        return True

    # -- sessions -----------------------------------------------------------------------------

    def _session_ended(self, session_id: str) -> None:
        for connection in [c for c in self.connections if c.session.id == session_id]:
            self.discard(connection)
            task = asyncio.get_running_loop().create_task(self._close(connection))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    @staticmethod
    async def _close(connection: Connection) -> None:
        await connection.ws.close(code=SESSION_ENDED, message=b"session ended")

    async def sweep(self, every: float) -> None:
        """End idle sessions (and so close their sockets) until cancelled."""
        while True:
            await asyncio.sleep(every)
            self.store.expire_idle()

    async def watch_users(self, db: async_sessionmaker[AsyncSession], every: float) -> None:
        """End the sessions of users disabled or changed elsewhere (the CLI, the REST API),
        closing their open sockets, until cancelled."""
        while True:
            await asyncio.sleep(every)
            try:
                async with db() as session:
                    await self.store.recheck(session)
            except (SQLAlchemyError, OSError) as exc:
                log.warning("could not check the signed-in users: %s", exc)

    async def close_all(self) -> None:
        for connection in list(self.connections):
            with contextlib.suppress(Exception):
                await connection.ws.close(code=1001, message=b"server stopping")
        self.connections.clear()
        self._views.clear()
        self._desks.clear()
        for task in list(self._closing):
            with contextlib.suppress(Exception):
                await task

    # -- receiving ----------------------------------------------------------------------------

    async def dispatch(self, connection: Connection, raw: str) -> None:
        try:
            message = json.loads(raw)
        except (ValueError, RecursionError):  # not JSON, a number too long, nested too deep
            message = None
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            await self.send(connection, {"type": "error", "message": "not a message"})
            return
        kind = message["type"]
        route = self._routes.get(kind)
        if route is None:
            await self.send(connection, {"type": "error", "message": f"unknown: {kind[:40]}"})
            return
        if not connection.session.at_least(route.role) or connection.view not in route.views:
            log.warning("%s may not send %s", connection.session.username, kind)
            await self.send(connection, {"type": "error", "message": "forbidden", "for": kind})
            return
        self.store.touch(connection.session)
        try:
            reply = await route.handler(connection, message)
        except ControlError as exc:
            reply = {"type": "error", "message": str(exc)}
            if not exc.unanswered:
                reply["for"] = kind
        except UiError as exc:
            reply = {"type": "error", "message": str(exc), "for": kind}
        if reply is not None:
            await self.send(connection, reply)


def origin_allowed(request: web.Request, extra: Iterable[str]) -> bool:
    """The page's own origin, or one configured: a socket opened by another site is refused."""
    origin = request.headers.get("Origin", "")
    return bool(origin) and (origin == f"{request.scheme}://{request.host}" or origin in extra)


HUB = web.AppKey("ui_hub", Hub)


async def socket_view(request: web.Request) -> web.StreamResponse:
    """``GET /ui/ws?view=desk|wallboard``: checks first, then the socket until it closes."""
    app = request.app
    if not origin_allowed(request, app[DEPS].settings.allowed_origins):
        raise web.HTTPForbidden(text="foreign origin")
    store = app[STORE]
    async with app[DEPS].db() as db:
        session = await store.open(db, request.cookies.get(SESSION_COOKIE))
    if session is None:
        raise web.HTTPUnauthorized(text="no session")
    view = request.query.get("view", "desk")
    if view not in VIEW_ROLES:
        raise web.HTTPBadRequest(text="unknown view")
    if not session.at_least(VIEW_ROLES[view]):
        raise web.HTTPForbidden(text="not for this role")
    hub = app[HUB]
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=MAX_MESSAGE)
    await ws.prepare(request)
    connection = Connection(ws, session, view, request.transport)
    hub.add(connection)
    try:
        await hub.welcome(connection)
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                break
            if store.get(session.id) is None:
                await ws.close(code=SESSION_ENDED, message=b"session ended")
                break
            await hub.dispatch(connection, message.data)
    finally:
        hub.discard(connection)
    return ws
