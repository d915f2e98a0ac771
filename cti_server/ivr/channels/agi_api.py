"""The CTI server's side of ``cti-agi``: what a classic AGI process may ask and tell it.

``cti-agi`` runs the same IVR as the FastAGI route, but in a process of its own per call, so the
server-side services reach it over HTTP: customer lookup (caller ID, account number), a caller's
PIN checked against the CRM, the named self-service lookups, a queue's estimated wait, the
IVR's own domain events onto the bus, and spoken menu choices: the server listens on its
AudioSocket listener (``POST /listen`` names the listening, Asterisk streams the caller to it,
``GET /listen/{id}`` answers the word or key heard), since a process per call cannot load a
speech model in time.
Every request carries the service token (``ivr.service_token``), compared in constant time. Only
the four events an IVR produces are accepted, each checked field by field; anything else is
refused with a 4xx that says why, so a wrong or hostile caller of this API cannot put arbitrary
events (an agent's state, a call's end) on the bus.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping
from datetime import UTC
from typing import Any, Protocol

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, SecretStr, TypeAdapter, ValidationError

from cti_server.events import (
    CallArrived,
    CallbackRequested,
    CallKey,
    DomainEvent,
    IvrFinished,
    SurveyAnswered,
)
from cti_server.ivr.channels.agi_client import (
    CUSTOMER,
    ESTIMATED_WAIT,
    EVENTS,
    LISTEN,
    LISTENING,
    LOOKUP,
    NO_MODEL,
    PIN,
    PREFIX,
    SPEECH,
)
from cti_server.ivr.engine import (
    MAX_STEPS,
    Customer,
    Lookup,
    NotVerified,
    PinCheck,
    SelfService,
    VerifyPin,
)
from cti_server.ivr.flow import Digits, Language, SpokenWord
from cti_server.speech.audiosocket import HEADER_TIMEOUT, Listening
from cti_server.speech.heard import Heard

log = logging.getLogger(__name__)

__all__ = ["PREFIX", "create_agi_api"]

ACCEPTED: dict[str, type[DomainEvent]] = {
    cls.__name__: cls for cls in (CallArrived, IvrFinished, CallbackRequested, SurveyAnswered)
}
MAX_BODY = 256 * 1024  # an IVR's path of MAX_STEPS steps is a few kB
_OUTCOMES = {"transfer", "hangup", "caller_gone", "callback"}
_CUSTOMER = TypeAdapter(Customer | None)
KEEP_HEARD = 30.0  # seconds what a listening heard waits to be fetched, then it is forgotten
MAX_LISTENINGS = 1000  # listenings held at once (running or ended and not yet forgotten)


class SpeechListener(Protocol):
    """The server's AudioSocket listener, as spoken menus use it
    (:class:`cti_server.speech.audiosocket.AudioSocketServer`)."""

    @property
    def address(self) -> str: ...

    def languages(self) -> set[str]: ...

    def expect(
        self, words: Mapping[str, str], language: str, timeout: float, peer: str | None = None
    ) -> Listening | None: ...

    def forget(self, listening: Listening) -> None: ...


class ListenRequest(BaseModel):
    """``POST /listen``: a menu's words (word -> key) in a language, for at most ``timeout``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    words: dict[SpokenWord, Digits] = Field(min_length=1, max_length=32)
    language: Language
    timeout: float = Field(gt=0, le=60)


class _Refused(Exception):
    """A request this API will not serve: status and a message for the caller."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def create_agi_api(
    *,
    token: SecretStr | None,
    caller_lookup: Callable[[CallKey], Lookup],
    by_account: Lookup,
    self_service: SelfService,
    estimated_wait: Callable[[str, str], float],
    publish: Callable[[DomainEvent], None],
    nodes: Collection[str],
    verify_pin: VerifyPin | None = None,
    callers_ahead: Callable[[str, str], int] | None = None,
    speech: SpeechListener | None = None,
) -> web.Application:
    """The ``/agi`` sub-application; without a token configured it answers 503 to everything."""
    api = AgiApi(
        token, self_service, estimated_wait, publish, set(nodes), callers_ahead=callers_ahead
    )
    listenings = RemoteListenings(speech)
    app = web.Application(middlewares=[api.guard])
    app.router.add_get(CUSTOMER, api.customer_view(caller_lookup, by_account))
    app.router.add_post(LOOKUP, api.lookup_view)
    app.router.add_get(ESTIMATED_WAIT, api.estimated_wait_view)
    app.router.add_post(EVENTS, api.events_view)
    app.router.add_post(PIN, api.pin_view(verify_pin))
    app.router.add_get(SPEECH, listenings.languages_view)
    app.router.add_post(LISTEN, listenings.listen_view)
    app.router.add_get(LISTENING, listenings.heard_view)
    app.on_cleanup.append(listenings.close)
    return app


@dataclasses.dataclass
class _Held:
    """A listening cti-agi asked for: it ends by itself within ``within`` seconds."""

    task: asyncio.Task[Heard]
    within: float
    ended_at: float | None = None

    def ended(self, _task: asyncio.Task[Heard]) -> None:
        self.ended_at = time.monotonic()


class RemoteListenings:
    """Spoken menu choices for ``cti-agi``: the listenings the server holds for it.

    Each listening ends by itself (a word, a key, silence, or Asterisk never connecting), is
    then forgotten by the listener, and what it heard is kept :data:`KEEP_HEARD` seconds for
    ``GET /listen/{id}``: a call that hung up meanwhile leaves nothing behind for long.
    """

    def __init__(self, speech: SpeechListener | None) -> None:
        self._speech = speech
        self._held: dict[uuid.UUID, _Held] = {}

    async def languages_view(self, request: web.Request) -> web.Response:
        """The languages the server hears words in: ``cti-agi`` asks once per call."""
        languages = sorted(self._speech.languages()) if self._speech else []
        return web.json_response({"languages": languages})

    async def listen_view(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        try:
            wanted = ListenRequest.model_validate(body)
        except ValidationError as exc:
            raise _Refused(422, _errors(exc)) from None
        self._prune()
        if len(self._held) >= MAX_LISTENINGS:
            raise _Refused(503, f"already {MAX_LISTENINGS} listenings held: try again later")
        speech = self._speech
        listening = (  # cti-agi runs beside the Asterisk that will stream: bound to its address
            speech.expect(wanted.words, wanted.language, wanted.timeout, peer=request.remote)
            if speech
            else None
        )
        if speech is None or listening is None:
            known = ", ".join(sorted(speech.languages())) if speech else ""
            raise _Refused(
                NO_MODEL,
                f"no speech model for language {wanted.language!r} in this server"
                f" (it has: {known or 'none'}): take keys only",
            )
        # Listening.result(): Asterisk connects within HEADER_TIMEOUT, then the timeout and 1 s
        within = HEADER_TIMEOUT + wanted.timeout + 2.0
        held = _Held(asyncio.create_task(self._run(speech, listening)), within)
        held.task.add_done_callback(held.ended)
        self._held[listening.id] = held
        return web.json_response(
            {"id": str(listening.id), "address": speech.address, "within": within}, status=201
        )

    async def heard_view(self, request: web.Request) -> web.Response:
        """What the listening heard; waits for it to end (it does within its ``within``)."""
        try:
            named = uuid.UUID(request.match_info["id"])
        except ValueError:
            raise _Refused(400, "not a listening id") from None
        self._prune()
        held = self._held.get(named)
        if held is None:
            raise _Refused(404, "no such listening (never asked for, or forgotten since)")
        try:
            async with asyncio.timeout(held.within):
                heard = await asyncio.shield(held.task)
        except TimeoutError:
            raise _Refused(504, "the listening has not ended in time") from None
        return web.json_response({"id": str(named), "key": heard.key, "word": heard.word})

    @staticmethod
    async def _run(speech: SpeechListener, listening: Listening) -> Heard:
        try:
            return await listening.result()
        finally:
            speech.forget(listening)

    def _prune(self) -> None:
        cutoff = time.monotonic() - KEEP_HEARD
        for named, held in list(self._held.items()):
            if held.ended_at is not None and held.ended_at < cutoff:
                del self._held[named]

    async def close(self, _app: web.Application | None = None) -> None:
        tasks = [held.task for held in self._held.values()]
        self._held.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class AgiApi:
    def __init__(
        self,
        token: SecretStr | None,
        self_service: SelfService,
        estimated_wait: Callable[[str, str], float],
        publish: Callable[[DomainEvent], None],
        nodes: set[str],
        *,
        callers_ahead: Callable[[str, str], int] | None = None,
    ) -> None:
        self._token = token.get_secret_value().encode("utf-8") if token else None
        self._self_service = self_service
        self._estimated_wait = estimated_wait
        self._publish = publish
        self._nodes = nodes
        self._adapters = {name: TypeAdapter(cls) for name, cls in ACCEPTED.items()}
        self._callers_ahead = callers_ahead

    @web.middleware
    async def guard(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """The token first, then the handler; refusals become JSON with a message."""
        try:
            self._check_token(request)
            return await handler(request)
        except _Refused as refused:
            headers = {"WWW-Authenticate": "Bearer"} if refused.status == 401 else None
            return web.json_response(
                {"error": str(refused)}, status=refused.status, headers=headers
            )

    def _check_token(self, request: web.Request) -> None:
        if self._token is None:
            raise _Refused(503, "the classic AGI API is off: no ivr.service_token configured")
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise _Refused(401, "a service token is needed (Authorization: Bearer ...)")
        if not hmac.compare_digest(given.strip().encode("utf-8"), self._token):
            raise _Refused(403, "wrong service token")

    def customer_view(
        self, caller_lookup: Callable[[CallKey], Lookup], by_account: Lookup
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def view(request: web.Request) -> web.Response:
            """``?caller_id=&node=&linkedid=`` (the call's identification answers) or
            ``?account=``: the one customer found, or null."""
            query = request.query
            if "caller_id" in query and len(query["caller_id"]) <= 64:
                linkedid = query.get("linkedid", "")
                if not 0 < len(linkedid) <= 150:
                    raise _Refused(400, "caller_id needs the call's node and linkedid")
                key = CallKey(self._node(query.get("node", "")), linkedid)
                found = await caller_lookup(key)(query["caller_id"])
            elif "account" in query and len(query["account"]) <= 64:
                found = await by_account(query["account"])
            else:
                raise _Refused(400, "give caller_id or account (at most 64 characters)")
            customer = dataclasses.asdict(found) if found else None
            return web.json_response({"customer": customer})

        return view

    @staticmethod
    def pin_view(verify_pin: VerifyPin | None) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def view(request: web.Request) -> web.Response:
            """``{"customer_id": 7, "pin": "1234"}``: whether it is their PIN. The PIN comes in
            the body (a URL may be logged) and is never repeated in an answer."""
            if verify_pin is None:
                raise _Refused(503, "no PIN check in this server")
            body = await _json_body(request)
            customer_id, pin = body.get("customer_id"), body.get("pin")
            if not isinstance(customer_id, int) or isinstance(customer_id, bool) or customer_id < 1:
                raise _Refused(422, "customer_id: a positive integer")
            if not isinstance(pin, str) or not 0 < len(pin) <= 32:
                raise _Refused(422, "pin: a string of 1-32 characters")
            customer = Customer(customer_id=customer_id, name="", tier="", language=None)
            check = await verify_pin(customer, pin)
            return web.json_response({"verified": check is PinCheck.MATCH, "result": check.value})

        return view

    async def lookup_view(self, request: web.Request) -> web.Response:
        """A self-service lookup named in a flow, for the customer the IVR identified."""
        body = await _json_body(request)
        try:
            customer = _CUSTOMER.validate_python(body.get("customer"))
        except ValidationError as exc:
            raise _Refused(422, f"customer: {_errors(exc)}") from None
        try:
            answer = await self._self_service(request.match_info["name"], customer)
        except KeyError as exc:
            raise _Refused(404, str(exc.args[0]) if exc.args else "no such lookup") from None
        except NotVerified:  # an answer the flow branches on, not a refusal of the bridge
            return web.json_response({"answer": None, "not_verified": True})
        return web.json_response({"answer": answer})

    async def estimated_wait_view(self, request: web.Request) -> web.Response:
        node = self._node(request.query.get("node", ""))
        queue = request.query.get("queue", "")
        if not queue or len(queue) > 40:
            raise _Refused(400, "give the queue (at most 40 characters)")
        ahead = self._callers_ahead(node, queue) if self._callers_ahead else -1
        return web.json_response(
            {"queue": queue, "seconds": self._estimated_wait(node, queue), "ahead": ahead}
        )

    async def events_view(self, request: web.Request) -> web.Response:
        """One IVR event (``DomainEvent.to_dict()``), checked, onto the bus."""
        body = await _json_body(request)
        kind = body.get("type")
        cls = ACCEPTED.get(kind) if isinstance(kind, str) else None
        if cls is None:
            accepted = ", ".join(sorted(ACCEPTED))
            raise _Refused(422, f"event type {kind!r} is not accepted here (only {accepted})")
        if body.get("version") != cls.version:
            raise _Refused(422, f"{kind} version {body.get('version')!r}: expected {cls.version}")
        event = self._event(cls, body.get("data"))
        self._publish(event)
        return web.json_response({"accepted": kind}, status=202)

    def _event(self, cls: type[DomainEvent], data: Any) -> DomainEvent:
        if not isinstance(data, dict):
            raise _Refused(422, "data must be an object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise _Refused(422, f"{cls.__name__} has no field {', '.join(unknown)}")
        try:
            event: DomainEvent = self._adapters[cls.__name__].validate_python(data)
        except ValidationError as exc:
            raise _Refused(422, f"{cls.__name__}: {_errors(exc)}") from None
        if event.at.tzinfo is None:
            raise _Refused(422, f"{cls.__name__}: at needs a time zone")
        self._node(getattr(event, "node", ""))
        if not 0 < len(getattr(event, "linkedid", "")) <= 150:
            raise _Refused(422, f"{cls.__name__}: linkedid must be 1-150 characters")
        _check_domain(event)
        return dataclasses.replace(event, at=event.at.astimezone(UTC))

    def _node(self, node: str) -> str:
        if node not in self._nodes:
            raise _Refused(422, f"node {node!r} is not an Asterisk node of this server")
        return node


def _check_domain(event: DomainEvent) -> None:
    """What the types alone do not say."""
    if isinstance(event, SurveyAnswered) and not 1 <= event.score <= 5:
        raise _Refused(422, "SurveyAnswered: score must be 1-5")
    if isinstance(event, IvrFinished):
        if event.outcome not in _OUTCOMES:
            raise _Refused(422, f"IvrFinished: outcome must be one of {sorted(_OUTCOMES)}")
        if len(event.path) > MAX_STEPS:
            raise _Refused(422, f"IvrFinished: a path has at most {MAX_STEPS} steps")
    if isinstance(event, CallbackRequested) and event.kind not in {"callback", "voicemail"}:
        raise _Refused(422, "CallbackRequested: kind must be callback or voicemail")
    if isinstance(event, CallbackRequested) and not 0 <= event.position <= 100_000:
        raise _Refused(422, "CallbackRequested: position must be 0-100000")
    if isinstance(event, CallbackRequested) and event.joined_at and event.joined_at.tzinfo is None:
        raise _Refused(422, "CallbackRequested: joined_at needs a time zone")


async def _json_body(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise _Refused(413, f"a request body is at most {MAX_BODY} bytes")
    raw = await request.read()  # bounded by the application's client_max_size too
    if len(raw) > MAX_BODY:
        raise _Refused(413, f"a request body is at most {MAX_BODY} bytes")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:  # UnicodeDecodeError is a ValueError too
        raise _Refused(400, f"malformed JSON: {exc}") from None
    except RecursionError:
        raise _Refused(400, "malformed JSON: nested too deeply") from None
    if not isinstance(body, dict):
        raise _Refused(400, "the body must be a JSON object")
    return body


def _errors(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}"
        for e in exc.errors(include_url=False)[:5]
    )
