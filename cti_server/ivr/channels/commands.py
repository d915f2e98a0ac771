"""The IVR's ``Channel`` in AGI commands, once, for both transports.

The engine asks for a prompt, a key, digits, a recording, a spoken choice; here each request
becomes the AGI command Asterisk understands and each answer is read back (a key from its
character code, digits, a recording's length). FastAGI (:mod:`.fastagi`, asyncio) and classic
AGI (:mod:`.agi`, pyst2) are only the :class:`AgiLink` that carries the lines, and the way a
spoken choice is heard (the server's own AudioSocket listener, or the server over HTTP), so the
engine cannot tell them apart.

One set of rules for both: a hang-up ends the walk (:class:`CallerGone`); any other failure is
logged and the step goes on; ``-1``, which Asterisk answers both for "caller hung up" and for
"could not play", is settled by asking ``CHANNEL STATUS``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

from cti_server.ivr.engine import CallerGone, Recording
from cti_server.speech.heard import Heard
from cti_server.telephony.fastagi import AgiError

log = logging.getLogger(__name__)

SOUNDS = "cti"  # prompts live in sounds/custom/<language>/cti/<prompt>
KEYS = frozenset("0123456789*#ABCD")  # what a phone's keypad can send as DTMF
RECORDING_RATE = 8000  # RECORD FILE's endpos counts samples at 8 kHz

Answer = dict[str, Any]
"""An answer as parsed: ``{"result": (value, data), "endpos": (value, ""), ...}``."""


class AgiCommandFailed(AgiError):
    """Asterisk refused or failed a command; the channel may still be up."""


class AgiLink(Protocol):
    """One call's AGI connection: sends a command's words (each cleaned of line breaks) and
    answers Asterisk's parsed reply. A hang-up or a broken link raises :class:`CallerGone`,
    any other error answer :class:`AgiCommandFailed`."""

    async def command(self, *words: str, timeout: float | None = None) -> Answer: ...

    async def get_variable(self, expression: str) -> str: ...

    async def set_variable(self, name: str, value: str) -> None: ...


def sound(prompt: str) -> str:
    """Asterisk finds ``cti/<prompt>`` in the directory of the channel's language."""
    return f"{SOUNDS}/{prompt}"


def key_of(code: str) -> str:
    """AGI answers a key as its character code: ``49`` is ``1``; ``0`` means none, and so does
    any code that is no DTMF key (a broken or hostile peer's answer is no choice)."""
    try:
        key = chr(int(code))
    except (ValueError, OverflowError):
        return ""
    return key if key in KEYS else ""


def _ms(seconds: float) -> str:
    return str(int(seconds * 1000))


class AgiCommands:
    """What the IVR engine drives, over one :class:`AgiLink`; a transport that hears spoken
    choices overrides :meth:`understands` and :meth:`_hear`."""

    def __init__(self, link: AgiLink) -> None:
        self._link = link
        self._language = ""

    async def _speak(self, language: str) -> None:
        """Prompts are chosen by the channel's language, as Asterisk does for its own."""
        if language != self._language:
            await self.set_variable("CHANNEL(language)", language)
            self._language = language

    async def _command(self, *words: str) -> str:
        """Run a command, its result value; a hang-up ends the walk, any other failure is
        logged and skipped."""
        try:
            result = await self._link.command(*words)
        except AgiCommandFailed as exc:
            await self._still_there()
            log.warning("IVR command %s failed, going on: %s", words[0], exc)
            return ""
        value, _data = result.get("result", ("", ""))
        return str(value)

    async def _still_there(self) -> None:
        """Asterisk answers -1 both for "caller hung up" and for "could not play": ask."""
        try:
            await self._link.command("CHANNEL STATUS")
        except AgiCommandFailed as exc:
            raise CallerGone(str(exc)) from None

    async def play(self, prompt: str, language: str, escape: str = "") -> str:
        await self._speak(language)
        return key_of(await self._command("STREAM FILE", sound(prompt), f'"{escape}"'))

    async def read_key(self, timeout: float) -> str:
        return key_of(await self._command("WAIT FOR DIGIT", _ms(timeout)))

    async def ask(self, prompt: str, language: str, escape: str, timeout: float) -> str:
        await self._speak(language)
        return key_of(await self._command("GET OPTION", sound(prompt), f'"{escape}"', _ms(timeout)))

    async def read_digits(self, prompt: str, language: str, max_digits: int, timeout: float) -> str:
        await self._speak(language)
        value = await self._command("GET DATA", sound(prompt), _ms(timeout), str(max_digits))
        return value if value.isdigit() else ""

    async def record(self, name: str, max_seconds: float, silence_seconds: float) -> Recording:
        spool = await self._link.get_variable("${ASTSPOOLDIR}")  # a hang-up here: no message
        path = f"{spool}/recordings/{name}"
        words = ("RECORD FILE", path, "wav", '"#"', _ms(max_seconds), "BEEP")
        silence = f"s={max(1, int(silence_seconds))}"
        try:
            result = await self._link.command(*words, silence, timeout=max_seconds + 30)
        except CallerGone as gone:
            # the message is kept: Asterisk closes the file when the caller hangs up
            raise CallerGone(str(gone), Recording(f"{path}.wav", -1.0)) from None
        except AgiCommandFailed as exc:
            await self._still_there()
            log.warning("IVR recording failed, going on: %s", exc)
            return Recording("", 0.0)
        samples, _ = result.get("endpos", ("0", ""))
        seconds = int(samples) / RECORDING_RATE if str(samples).isdigit() else -1.0
        return Recording(f"{path}.wav", round(seconds, 2))

    async def say(self, kind: str, value: str, language: str) -> None:
        await self._speak(language)
        await self._command("SAY NUMBER" if kind == "number" else "SAY DIGITS", value, '""')

    async def set_variable(self, name: str, value: str) -> None:
        """A hang-up raises :class:`CallerGone`; other failures propagate."""
        await self._link.set_variable(name, value)

    def understands(self, language: str) -> bool:
        """Whether a spoken choice can be heard in ``language``; without speech, keys only."""
        return False

    async def listen(self, words: Mapping[str, str], language: str, timeout: float) -> Heard:
        """A word or a key; where nothing can listen (no speech, no model for the language,
        the listener out of reach), a key as ever."""
        heard = await self._hear(words, language, timeout)
        return heard if heard is not None else Heard(await self.read_key(timeout))

    async def _hear(self, words: Mapping[str, str], language: str, timeout: float) -> Heard | None:
        """The transport's listening; None: nobody listens, the menu takes a key."""
        return None

    async def _stream_caller(self, listening_id: str, address: str, timeout: float) -> None:
        """Asterisk streams the caller to an AudioSocket listener at ``address``;
        ``AudioSocket`` returns when the listener closes the socket (it has heard something)
        or the caller hangs up (:class:`CallerGone`)."""
        try:
            await self._link.command(
                "EXEC", "AudioSocket", f"{listening_id},{address}", timeout=timeout + 15
            )
        except AgiCommandFailed as exc:
            # AudioSocket ends with -1 when the listener closes the socket: is the caller there?
            log.debug("AudioSocket ended: %s", exc)
            await self._still_there()
