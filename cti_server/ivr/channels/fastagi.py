"""The IVR's ``Channel`` over a FastAGI session (asyncio, in the server's event loop).

The commands are :mod:`.commands`; this module is the link (a :class:`AgiSession` whose errors
read as the IVR's) and the listening: the server's own AudioSocket listener hears spoken choices
while Asterisk streams the caller to it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from cti_server.ivr.channels.commands import AgiCommandFailed, AgiCommands, Answer
from cti_server.ivr.engine import CallerGone
from cti_server.speech.audiosocket import AudioSocketServer
from cti_server.speech.heard import Heard
from cti_server.telephony.fastagi import AgiError, AgiHangup, AgiSession


class FastAgiLink:
    """A FastAGI session as an :class:`~.commands.AgiLink`: a hang-up is the caller gone."""

    def __init__(self, session: AgiSession) -> None:
        self._session = session

    async def command(self, *words: str, timeout: float | None = None) -> Answer:
        try:
            return await self._session.command(*words, timeout=timeout)
        except AgiHangup as exc:
            raise CallerGone(str(exc)) from None
        except AgiError as exc:
            raise AgiCommandFailed(str(exc)) from None

    async def get_variable(self, expression: str) -> str:
        try:
            return await self._session.get_variable(expression)
        except AgiHangup as exc:
            raise CallerGone(str(exc)) from None
        except AgiError as exc:
            raise AgiCommandFailed(str(exc)) from None

    async def set_variable(self, name: str, value: str) -> None:
        try:
            await self._session.set_variable(name, value)
        except AgiHangup as exc:
            raise CallerGone(str(exc)) from None
        except AgiError as exc:
            raise AgiCommandFailed(str(exc)) from None


class FastAgiChannel(AgiCommands):
    """What the IVR engine drives over one FastAGI session; spoken choices are heard by
    ``speech``, the server's AudioSocket listener (None: keys only)."""

    def __init__(self, session: AgiSession, speech: AudioSocketServer | None = None) -> None:
        super().__init__(FastAgiLink(session))
        self._session = session
        self._speech = speech

    def understands(self, language: str) -> bool:
        return self._speech is not None and language in self._speech.languages()

    async def _hear(self, words: Mapping[str, str], language: str, timeout: float) -> Heard | None:
        """Asterisk streams the caller to our listener while we wait for a word or a key."""
        speech = self._speech
        listening = (
            speech.expect(words, language, timeout, peer=self._session.peer) if speech else None
        )
        if speech is None or listening is None:
            return None
        streaming = asyncio.create_task(
            self._stream_caller(str(listening.id), speech.address, timeout)
        )
        try:
            heard = await listening.result()
        finally:
            speech.forget(listening)
        await streaming
        return heard
