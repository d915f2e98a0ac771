"""The IVR's ``Channel`` over a FastAGI session (asyncio, in the server's event loop)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from cti_server.ivr.engine import CallerGone, Recording
from cti_server.speech.audiosocket import AudioSocketServer
from cti_server.speech.heard import Heard
from cti_server.telephony.fastagi import AgiError, AgiHangup, AgiSession

log = logging.getLogger(__name__)

SOUNDS = "cti"  # prompts live in sounds/custom/<language>/cti/<prompt>


def sound(prompt: str) -> str:
    """Asterisk finds ``cti/<prompt>`` in the directory of the channel's language."""
    return f"{SOUNDS}/{prompt}"


KEYS = frozenset("0123456789*#ABCD")  # what a phone's keypad can send as DTMF


def key_of(code: str) -> str:
    """AGI answers a key as its character code: ``49`` is ``1``; ``0`` means none, and so does
    any code that is no DTMF key (a broken or hostile peer's answer is no choice)."""
    try:
        key = chr(int(code))
    except (ValueError, OverflowError):
        return ""
    return key if key in KEYS else ""


class FastAgiChannel:
    def __init__(self, session: AgiSession, speech: AudioSocketServer | None = None) -> None:
        self._session = session
        self._speech = speech
        self._language = ""

    async def _speak(self, language: str) -> None:
        """Prompts are chosen by the channel's language, as Asterisk does for its own."""
        if language != self._language:
            await self.set_variable("CHANNEL(language)", language)
            self._language = language

    async def _command(self, *words: str) -> tuple[str, str]:
        """Run a command; a hang-up ends the walk, any other failure is logged and skipped."""
        try:
            result = await self._session.command(*words)
        except AgiHangup as exc:
            raise CallerGone(str(exc)) from None
        except AgiError as exc:
            # Asterisk answers -1 both for "caller hung up" and for "could not play": ask.
            await self._still_there()
            log.warning("IVR command %s failed, going on: %s", words[0], exc)
            return "", ""
        value, data = result.get("result", ("", ""))
        return str(value), str(data)

    async def _still_there(self) -> None:
        try:
            await self._session.command("CHANNEL STATUS")
        except (AgiHangup, AgiError) as exc:
            raise CallerGone(str(exc)) from None

    async def play(self, prompt: str, language: str, escape: str = "") -> str:
        await self._speak(language)
        value, _ = await self._command("STREAM FILE", sound(prompt), f'"{escape}"')
        return key_of(value)

    async def read_key(self, timeout: float) -> str:
        value, _ = await self._command("WAIT FOR DIGIT", str(int(timeout * 1000)))
        return key_of(value)

    async def ask(self, prompt: str, language: str, escape: str, timeout: float) -> str:
        await self._speak(language)
        value, _ = await self._command(
            "GET OPTION", sound(prompt), f'"{escape}"', str(int(timeout * 1000))
        )
        return key_of(value)

    async def read_digits(self, prompt: str, language: str, max_digits: int, timeout: float) -> str:
        await self._speak(language)
        value, _ = await self._command(
            "GET DATA", sound(prompt), str(int(timeout * 1000)), str(max_digits)
        )
        return value if value.isdigit() else ""

    async def record(self, name: str, max_seconds: float, silence_seconds: float) -> Recording:
        try:
            spool = await self._session.get_variable("${ASTSPOOLDIR}")
        except AgiHangup as exc:
            raise CallerGone(str(exc)) from None
        path = f"{spool}/recordings/{name}"
        words = ("RECORD FILE", path, "wav", '"#"', str(int(max_seconds * 1000)), "BEEP")
        silence = f"s={max(1, int(silence_seconds))}"
        try:
            result = await self._session.command(*words, silence, timeout=max_seconds + 30)
        except AgiHangup as exc:
            # the message is kept: Asterisk closes the file when the caller hangs up
            raise CallerGone(str(exc), Recording(f"{path}.wav", -1.0)) from None
        except AgiError as exc:
            await self._still_there()
            log.warning("IVR recording failed, going on: %s", exc)
            return Recording("", 0.0)
        samples, _ = result.get("endpos", ("0", ""))
        seconds = int(samples) / 8000 if str(samples).isdigit() else -1.0
        return Recording(f"{path}.wav", round(seconds, 2))

    async def say(self, kind: str, value: str, language: str) -> None:
        await self._speak(language)
        command = "SAY NUMBER" if kind == "number" else "SAY DIGITS"
        await self._command(command, value, '""')

    def understands(self, language: str) -> bool:
        return self._speech is not None and language in self._speech.languages()

    async def listen(self, words: Mapping[str, str], language: str, timeout: float) -> Heard:
        """Asterisk streams the caller to our AudioSocket listener while we wait for a word
        or a key; without a model for the language, only keys count."""
        speech, peer = self._speech, self._session.peer
        listening = speech.expect(words, language, timeout, peer=peer) if speech else None
        if listening is None or self._speech is None:
            return Heard(await self.read_key(timeout))
        streaming = asyncio.create_task(
            self._session.command(
                "EXEC",
                "AudioSocket",
                f"{listening.id},{self._speech.address}",
                timeout=timeout + 15,
            )
        )
        try:
            heard = await listening.result()
        finally:
            self._speech.forget(listening)
        try:
            await streaming
        except (AgiHangup, AgiError) as exc:
            # AudioSocket ends with -1 when we close the socket: is the caller still there?
            log.debug("AudioSocket ended: %s", exc)
            await self._still_there()
        return heard

    async def set_variable(self, name: str, value: str) -> None:
        try:
            await self._session.set_variable(name, value)
        except AgiHangup as exc:
            raise CallerGone(str(exc)) from None
