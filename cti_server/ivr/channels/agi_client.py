"""What ``cti-agi`` asks of the running CTI server, over its HTTP port (see ``agi_api.py``).

A classic AGI process lives for one call, so it holds no database, bus or tracker of its own:
the customer lookups, the self-service answers, the estimated wait and the IVR's events all go
through the server, and so does speech: a per-call process cannot load a Vosk model in time, so
the server listens (its AudioSocket listener, as for FastAGI) and ``cti-agi`` only has Asterisk
stream the caller there and fetches what was heard. The stdlib ``urllib`` keeps the process
light (no event loop of its own for HTTP, no session to close); every request has a short
deadline, and anything but a good answer raises :class:`ServerUnavailable`, which ends
``cti-agi`` so that the dialplan's fallback sends the call to the default queue (speech is the
exception: without it a menu takes keys, as it always does).
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from cti_server.events import CallKey, DomainEvent
from cti_server.ivr.channels.agi import RemoteListening, ServerUnavailable
from cti_server.ivr.engine import Customer, Lookup, NotVerified, PinCheck
from cti_server.speech.heard import Heard

log = logging.getLogger(__name__)

PREFIX = "/agi"
CUSTOMER = "/customer"  # ?caller_id=... or ?account=...
LOOKUP = "/lookups/{name}"
ESTIMATED_WAIT = "/estimated-wait"  # ?node=...&queue=...
EVENTS = "/events"
PIN = "/pin"  # POST {"customer_id": ..., "pin": ...}: in the body, never in a logged URL
SPEECH = "/speech"  # GET: {"languages": [...]} the server's speech models understand
LISTEN = "/listen"  # POST {"words": {word: key}, "language": ..., "timeout": seconds}
LISTENING = "/listen/{id}"  # GET: what was heard, once the listening has ended
NO_MODEL = 409  # POST /listen: no speech model for that language in the server


class CtiServerClient:
    """The CTI server's classic-AGI API, blocking, with a deadline on every request; the
    :class:`~cti_server.ivr.channels.agi.RemoteSpeech` of the classic AGI channel."""

    def __init__(self, base_url: str, token: str, node: str, timeout: float = 3.0) -> None:
        self._base = base_url.rstrip("/") + PREFIX
        self._token = token
        self._node = node
        self._timeout = timeout
        # no proxy from the environment may see the token or slow a call down
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def _request(
        self,
        path: str,
        body: Any = None,
        query: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> Any:
        url = self._base + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(  # noqa: S310 - an http(s) URL from the settings
            url,
            data=data,
            method="GET" if data is None else "POST",
            headers={
                "Authorization": f"Bearer {self._token}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
        )
        try:
            with self._opener.open(request, timeout=timeout or self._timeout) as response:
                return json.loads(response.read(1 << 20) or b"null")
        except urllib.error.HTTPError as exc:
            detail = exc.read(500).decode("utf-8", "replace")
            raise ServerUnavailable(f"{path}: HTTP {exc.code} {detail}", exc.code) from None
        except (OSError, ValueError) as exc:  # URLError, timeouts, refused, bad JSON
            raise ServerUnavailable(f"{path}: {exc}") from None

    def _customer(self, query: dict[str, str]) -> Customer | None:
        found = self._request(CUSTOMER, query=query)
        if not isinstance(found, dict):
            raise ServerUnavailable(f"{CUSTOMER}: not an answer")
        data = found.get("customer")
        if data is None:
            return None
        try:
            return Customer(
                customer_id=int(data["customer_id"]),
                name=str(data["name"]),
                tier=str(data["tier"]),
                language=None if data.get("language") is None else str(data["language"]),
                has_pin=data.get("has_pin") is True,
                pin_locked=data.get("pin_locked") is True,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ServerUnavailable(f"{CUSTOMER}: not a customer: {exc!r}") from None

    def for_call(self, key: CallKey) -> Lookup:
        """Whom the call's caller ID names: the server's identification of that call."""

        async def by_caller_id(number: str) -> Customer | None:
            return self._customer({"caller_id": number, "node": key.node, "linkedid": key.linkedid})

        return by_caller_id

    async def by_account(self, digits: str) -> Customer | None:
        return self._customer({"account": digits})

    async def self_service(self, name: str, customer: Customer | None) -> dict[str, str] | None:
        """A failure raises: the engine logs it and takes the step's ``on_fail`` way."""
        path = LOOKUP.format(name=urllib.parse.quote(name, safe=""))
        answer = self._request(path, {"customer": asdict(customer) if customer else None})
        if isinstance(answer, dict) and answer.get("not_verified") is True:
            raise NotVerified(name)
        found = answer.get("answer") if isinstance(answer, dict) else ""
        if found is None:
            return None
        if not isinstance(found, dict):
            raise ServerUnavailable(f"{path}: not an answer")
        return {str(k): str(v) for k, v in found.items()}

    async def verify_pin(self, customer: Customer, pin: str) -> PinCheck:
        """The server checks the PIN against the CRM; it never answers with the hash."""
        answer = self._request(PIN, {"customer_id": customer.customer_id, "pin": pin})
        try:
            return PinCheck(str(answer.get("result")) if isinstance(answer, dict) else "")
        except ValueError:
            raise ServerUnavailable(f"{PIN}: not an answer") from None

    def callers_ahead(self, queue: str) -> int:
        """Callers waiting in ``queue`` now (-1: the server cannot say)."""
        answer = self._request(ESTIMATED_WAIT, query={"node": self._node, "queue": queue})
        ahead = answer.get("ahead", -1) if isinstance(answer, dict) else -1
        return ahead if isinstance(ahead, int) and not isinstance(ahead, bool) else -1

    def estimated_wait(self, queue: str) -> float:
        answer = self._request(ESTIMATED_WAIT, query={"node": self._node, "queue": queue})
        try:
            return float(answer["seconds"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ServerUnavailable(f"{ESTIMATED_WAIT}: {exc!r}") from None

    def publish(self, event: DomainEvent) -> None:
        """The IVR's events, on the server's bus; the server accepts only the IVR's own."""
        self._request(EVENTS, event.to_dict())

    def speech_languages(self) -> set[str]:
        """The languages the server hears words in (its speech models)."""
        answer = self._request(SPEECH)
        languages = answer.get("languages") if isinstance(answer, dict) else None
        if not isinstance(languages, list):
            raise ServerUnavailable(f"{SPEECH}: not an answer")
        return {language for language in languages if isinstance(language, str)}

    def listen(
        self, words: Mapping[str, str], language: str, timeout: float
    ) -> RemoteListening | None:
        """A listening on the server for these words, or None: no model for ``language``."""
        body = {"words": dict(words), "language": language, "timeout": timeout}
        try:
            answer = self._request(LISTEN, body)
        except ServerUnavailable as exc:
            if exc.status == NO_MODEL:
                log.info("the server has no speech model for %r: keys only", language)
                return None
            raise
        try:
            return RemoteListening(
                id=str(answer["id"]), address=str(answer["address"]), within=float(answer["within"])
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ServerUnavailable(f"{LISTEN}: not a listening: {exc!r}") from None

    def heard(self, listening: RemoteListening) -> Heard:
        """What the listening heard: the server answers once it has ended."""
        path = LISTENING.format(id=urllib.parse.quote(listening.id, safe=""))
        answer = self._request(path, timeout=listening.within + self._timeout)
        key = answer.get("key") if isinstance(answer, dict) else None
        word = answer.get("word", "") if isinstance(answer, dict) else None
        if not isinstance(key, str) or not isinstance(word, str):
            raise ServerUnavailable(f"{path}: not an answer")
        return Heard(key, word)
