"""The IVR's ``Channel`` over classic AGI (pyst2): one process per call, on stdin/stdout.

The same semantics as :mod:`cti_server.ivr.channels.fastagi`, command for command, so that the
engine cannot tell the transports apart: a hang-up ends the walk (:class:`CallerGone`), any other
failure is logged and the step goes on, and ``-1`` (which Asterisk answers both for "caller hung
up" and for "could not play") is settled by asking ``CHANNEL STATUS``.

pyst2 is blocking; that is fine here, where the process serves one call and nothing else. It does
not strip line breaks from the values it sends (a caller's name or a CRM value could then add an
AGI command of its own), so every word goes through :func:`clean` and pyst2's helpers that quote
are not used: :meth:`AgiCall.command` sends exactly the words the FastAGI channel sends.

Spoken menu choices: the CTI server listens, as it does for FastAGI (a process per call cannot
load a speech model in time). The channel asks it for a listening, runs ``EXEC AudioSocket`` so
that Asterisk streams the caller to the server's AudioSocket listener until a word or a key is
heard, then fetches what was; without the server or a model for the language, a key as ever.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Protocol

from asterisk.agi import AGI, AGIError, AGIHangup, AGIResultHangup

from cti_server.ivr.channels.agi_client import RemoteListening, ServerUnavailable
from cti_server.ivr.channels.fastagi import key_of, sound
from cti_server.ivr.engine import CallerGone, Recording
from cti_server.speech.heard import Heard

log = logging.getLogger(__name__)

# A broken link (EOF, a closed pipe) or an answer that is not AGI: pyst2 raises these, not its own
# errors (on EOF it fails parsing the empty line with ValueError).
_LINK_BROKEN = (OSError, ValueError, EOFError, UnicodeError)


Answer = dict[str, tuple[str, str]]
"""pyst2's parsed answer: ``{"result": (value, data), "endpos": (value, ""), ...}``."""


class AgiCommandFailed(Exception):
    """Asterisk refused or failed a command; the channel may still be up."""


def clean(word: str) -> str:
    """No CR, LF or NUL may reach Asterisk inside a value: each would end the command line."""
    return word.replace("\r", " ").replace("\n", " ").replace("\x00", "")


def quote(value: str) -> str:
    return '"' + clean(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


class AgiCall:
    """The call as classic AGI shows it: its environment, its commands and channel variables.

    Implements :class:`cti_server.ivr.inbound.CallSession` for ``cti-agi``.
    """

    def __init__(self, agi: AGI) -> None:
        self._agi = agi

    @property
    def env(self) -> Mapping[str, str]:
        env: dict[str, str] = self._agi.env
        return env

    def command(self, *words: str) -> Answer:
        """Send one command; raise :class:`CallerGone` on a hang-up or a broken link and
        :class:`AgiCommandFailed` on any other error answer."""
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

    def ensure_up(self) -> None:
        """:class:`CallerGone` if Asterisk signalled a hang-up (SIGHUP) since the last command."""
        try:
            self._agi.test_hangup()
        except AGIHangup as exc:
            raise CallerGone(str(exc)) from None

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
        return data if value == "1" else ""

    async def set_variable(self, name: str, value: str) -> None:
        """A hang-up raises :class:`CallerGone`; other failures propagate, as over FastAGI."""
        self.command("SET VARIABLE", name, quote(value))


class RemoteSpeech(Protocol):
    """The CTI server's listening, as ``cti-agi`` asks for it
    (:class:`cti_server.ivr.channels.agi_client.CtiServerClient`); failures raise
    :class:`~cti_server.ivr.channels.agi_client.ServerUnavailable`."""

    def speech_languages(self) -> set[str]: ...

    def listen(
        self, words: Mapping[str, str], language: str, timeout: float
    ) -> RemoteListening | None: ...

    def heard(self, listening: RemoteListening) -> Heard: ...


class AgiChannel:
    """What the IVR engine drives, over one :class:`AgiCall`."""

    def __init__(self, call: AgiCall, speech: RemoteSpeech | None = None) -> None:
        self._call = call
        self._language = ""
        self._speech = speech
        self._understood: set[str] | None = None  # asked once per call

    async def _speak(self, language: str) -> None:
        """Prompts are chosen by the channel's language, as Asterisk does for its own."""
        if language != self._language:
            await self.set_variable("CHANNEL(language)", language)
            self._language = language

    def _command(self, *words: str) -> tuple[str, str]:
        """Run a command; a hang-up ends the walk, any other failure is logged and skipped."""
        try:
            result = self._call.command(*words)
        except AgiCommandFailed as exc:
            # Asterisk answers -1 both for "caller hung up" and for "could not play": ask.
            self._still_there()
            log.warning("IVR command %s failed, going on: %s", words[0], exc)
            return "", ""
        value, data = result.get("result", ("", ""))
        return str(value), str(data)

    def _still_there(self) -> None:
        try:
            self._call.command("CHANNEL STATUS")
        except AgiCommandFailed as exc:
            raise CallerGone(str(exc)) from None

    async def play(self, prompt: str, language: str, escape: str = "") -> str:
        await self._speak(language)
        value, _ = self._command("STREAM FILE", sound(prompt), f'"{escape}"')
        return key_of(value)

    async def read_key(self, timeout: float) -> str:
        value, _ = self._command("WAIT FOR DIGIT", str(int(timeout * 1000)))
        return key_of(value)

    async def ask(self, prompt: str, language: str, escape: str, timeout: float) -> str:
        await self._speak(language)
        value, _ = self._command(
            "GET OPTION", sound(prompt), f'"{escape}"', str(int(timeout * 1000))
        )
        return key_of(value)

    async def read_digits(self, prompt: str, language: str, max_digits: int, timeout: float) -> str:
        await self._speak(language)
        value, _ = self._command(
            "GET DATA", sound(prompt), str(int(timeout * 1000)), str(max_digits)
        )
        return value if value.isdigit() else ""

    async def record(self, name: str, max_seconds: float, silence_seconds: float) -> Recording:
        self._call.ensure_up()  # a recording that never started is no message
        spool = await self._call.get_variable("${ASTSPOOLDIR}")
        path = f"{spool}/recordings/{name}"
        words = ("RECORD FILE", path, "wav", '"#"', str(int(max_seconds * 1000)), "BEEP")
        silence = f"s={max(1, int(silence_seconds))}"
        try:
            result = self._call.command(*words, silence)
        except CallerGone as gone:
            # the message is kept: Asterisk closes the file when the caller hangs up
            raise CallerGone(str(gone), Recording(f"{path}.wav", -1.0)) from None
        except AgiCommandFailed as exc:
            self._still_there()
            log.warning("IVR recording failed, going on: %s", exc)
            return Recording("", 0.0)
        samples, _ = result.get("endpos", ("0", ""))
        seconds = int(samples) / 8000 if str(samples).isdigit() else -1.0
        return Recording(f"{path}.wav", round(seconds, 2))

    async def say(self, kind: str, value: str, language: str) -> None:
        await self._speak(language)
        command = "SAY NUMBER" if kind == "number" else "SAY DIGITS"
        self._command(command, value, '""')

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

    async def listen(self, words: Mapping[str, str], language: str, timeout: float) -> Heard:
        """Asterisk streams the caller to the server's AudioSocket listener until it hears a
        word or a key; without the server or a model for the language, only keys count."""
        listening = self._listening(words, language, timeout)
        if listening is None or self._speech is None:
            return Heard(await self.read_key(timeout))
        self._stream(listening)
        try:
            return self._speech.heard(listening)
        except ServerUnavailable as exc:
            log.warning("the server lost what it heard, a key instead: %s", exc)
            return Heard(await self.read_key(timeout))

    def _listening(
        self, words: Mapping[str, str], language: str, timeout: float
    ) -> RemoteListening | None:
        if self._speech is None:
            return None
        try:
            return self._speech.listen(words, language, timeout)
        except ServerUnavailable as exc:
            log.warning("the server cannot listen, a key instead: %s", exc)
            return None

    def _stream(self, listening: RemoteListening) -> None:
        """``AudioSocket`` returns when the server closes the socket (it has heard something)
        or the caller hangs up (:class:`CallerGone`)."""
        try:
            self._call.command("EXEC", "AudioSocket", f"{listening.id},{listening.address}")
        except AgiCommandFailed as exc:
            # AudioSocket ends with -1 when the server closes the socket: is the caller there?
            log.debug("AudioSocket ended: %s", exc)
            self._still_there()

    async def set_variable(self, name: str, value: str) -> None:
        await self._call.set_variable(name, value)
