"""The IVR's ``Channel`` over classic AGI (pyst2): one process per call, on stdin/stdout.

The commands are :mod:`.commands`, the same as over FastAGI, so that the engine cannot tell the
transports apart; this module is the link (:class:`AgiCall`) and the listening.

pyst2 is blocking; that is fine here, where the process serves one call and nothing else. It does
not strip line breaks from the values it sends (a caller's name or a CRM value could then add an
AGI command of its own), so every word goes through :func:`clean` and pyst2's helpers that quote
are not used: :meth:`AgiCall.command` sends exactly the words the FastAGI link sends.

Spoken menu choices: the CTI server listens, as it does for FastAGI (a process per call cannot
load a speech model in time). The channel asks it for a listening (:class:`RemoteSpeech`, which
``agi_client.CtiServerClient`` implements), runs ``EXEC AudioSocket`` so that Asterisk streams
the caller to the server's AudioSocket listener until a word or a key is heard, then fetches what
was; without the server or a model for the language, a key as ever.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from asterisk.agi import AGI, AGIError, AGIHangup, AGIResultHangup

from cti_server.ivr.channels.commands import AgiCommandFailed, AgiCommands, Answer
from cti_server.ivr.engine import CallerGone
from cti_server.speech.heard import Heard
from cti_server.telephony.fastagi import clean, quote

log = logging.getLogger(__name__)

# A broken link (EOF, a closed pipe) or an answer that is not AGI: pyst2 raises these, not its own
# errors (on EOF it fails parsing the empty line with ValueError).
_LINK_BROKEN = (OSError, ValueError, EOFError, UnicodeError)


class ServerUnavailable(RuntimeError):
    """The CTI server could not be reached, refused the token, or answered nonsense."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class RemoteListening:
    """A listening the server holds for this call: Asterisk streams the caller to ``address``
    naming ``id``; it ends within ``within`` seconds (a word, a key or silence)."""

    id: str
    address: str
    within: float


class RemoteSpeech(Protocol):
    """The CTI server's listening, as ``cti-agi`` asks for it; failures raise
    :class:`ServerUnavailable`."""

    def speech_languages(self) -> set[str]: ...

    def listen(
        self, words: Mapping[str, str], language: str, timeout: float
    ) -> RemoteListening | None: ...

    def heard(self, listening: RemoteListening) -> Heard: ...


class AgiCall:
    """The call as classic AGI shows it: its environment, its commands and channel variables.

    The :class:`~.commands.AgiLink` of :class:`AgiChannel`, and the
    :class:`cti_server.ivr.inbound.CallSession` of ``cti-agi``. Its methods block (pyst2): the
    process serves this one call.
    """

    def __init__(self, agi: AGI) -> None:
        self._agi = agi

    @property
    def env(self) -> Mapping[str, str]:
        env: dict[str, str] = self._agi.env
        return env

    async def command(self, *words: str, timeout: float | None = None) -> Answer:
        """Send one command; raise :class:`CallerGone` on a hang-up or a broken link and
        :class:`AgiCommandFailed` on any other error answer. pyst2 has no deadline: Asterisk
        ends the process with the call."""
        try:
            return self._execute(words)
        except AGIHangup as exc:  # a SIGHUP, a closed pipe, or "(hangup)" in the answer
            raise CallerGone(f"{words[0]}: {exc}") from None
        except AGIError as exc:  # -1, 510 invalid, 511 dead channel, 520 usage, unknown codes
            raise AgiCommandFailed(f"{words[0]}: {exc}") from None

    def _execute(self, words: tuple[str, ...]) -> Answer:
        try:
            result: Answer = self._agi.execute(*(clean(w) for w in words))
        except _LINK_BROKEN as exc:
            raise CallerGone(f"AGI link broken during {words[0]}: {exc!r}") from None
        return result

    async def get_variable(self, expression: str) -> str:
        """Evaluate ``${...}`` on the channel, e.g. ``${CHANNEL(linkedid)}``."""
        try:
            result = self._execute(("GET FULL VARIABLE", quote(expression)))
        except AGIResultHangup:
            # pyst2 reads any answer whose data is "hangup" as a hang-up; Asterisk evaluates
            # variables on dead channels too, so here it is the value (as pyst2's own getter says)
            return "hangup"
        except AGIHangup as exc:
            raise CallerGone(f"GET FULL VARIABLE: {exc}") from None
        except AGIError as exc:
            raise AgiCommandFailed(f"GET FULL VARIABLE: {exc}") from None
        value, data = result.get("result", ("0", ""))
        return str(data) if value == "1" else ""

    async def set_variable(self, name: str, value: str) -> None:
        """A hang-up raises :class:`CallerGone`; other failures propagate, as over FastAGI."""
        await self.command("SET VARIABLE", name, quote(value))


class AgiChannel(AgiCommands):
    """What the IVR engine drives over one :class:`AgiCall`; spoken choices are heard by the
    CTI server (``speech``; None: keys only)."""

    def __init__(self, call: AgiCall, speech: RemoteSpeech | None = None) -> None:
        super().__init__(call)
        self._speech = speech
        self._understood: set[str] | None = None  # asked once per call

    def understands(self, language: str) -> bool:
        """Whether the server has a speech model for ``language``: asked once per call; a
        server out of reach understands nothing (the menus take keys)."""
        if self._speech is None:
            return False
        if self._understood is None:
            try:
                self._understood = self._speech.speech_languages()
            except ServerUnavailable as exc:
                log.warning("cannot ask the server which languages it hears, keys only: %s", exc)
                self._understood = set()
        return language in self._understood

    async def _hear(self, words: Mapping[str, str], language: str, timeout: float) -> Heard | None:
        """Asterisk streams the caller to the server's listener until it hears a word or a
        key, then the server says what it heard."""
        if self._speech is None:
            return None
        try:
            listening = self._speech.listen(words, language, timeout)
        except ServerUnavailable as exc:
            log.warning("the server cannot listen, a key instead: %s", exc)
            return None
        if listening is None:
            return None
        await self._stream_caller(listening.id, listening.address, timeout)
        try:
            return self._speech.heard(listening)
        except ServerUnavailable as exc:
            log.warning("the server lost what it heard, a key instead: %s", exc)
            return None
