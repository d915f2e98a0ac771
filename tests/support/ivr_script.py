"""A caller who follows a script through the IVR engine, and the CRM the engine asks, for the
tests of the engine and of its flows (PIN, verification, callback, survey).

The CRM knows one VIP by caller ID and one customer by account number."""

from __future__ import annotations

import itertools
from collections.abc import Mapping

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cti_server.events import CallKey
from cti_server.ivr.customers import CrmLookup
from cti_server.ivr.engine import Customer, IvrEngine, IvrResult, Lookup, Recording
from cti_server.ivr.identification import CallerIdentification
from cti_server.speech.heard import Heard

VIP_NUMBER = "+8613800138000"
UNKNOWN_NUMBER = "+8613911112222"
ACCOUNT = "12345678"
VIP = Customer(customer_id=42, name="王芳", tier="platinum", language="zh")
ACCOUNT_HOLDER = Customer(customer_id=7, name="Ann Lee", tier="silver", language=None)

Answer = str | BaseException


class ScriptedChannel:
    """A call whose caller follows a script: one planned answer per thing the engine waits for.

    ``play`` with escape digits, ``read_key`` and ``read_digits`` each take the next answer (a key,
    digits, ``""`` for a timeout, or an exception to raise). A prompt played without escape digits
    cannot be interrupted and takes none. Everything the engine does is logged in ``calls``.
    """

    def __init__(self, answers: list[Answer]) -> None:
        self._answers = list(answers)
        self.calls: list[str] = []
        self.played: list[tuple[str, str]] = []
        self.variables: dict[str, str] = {}

    def _next(self, what: str) -> str:
        if not self._answers:
            raise AssertionError(f"the script has no answer left for {what}; log: {self.calls}")
        answer = self._answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    @property
    def unused(self) -> list[Answer]:
        return list(self._answers)

    async def play(self, prompt: str, language: str, escape: str = "") -> str:
        self.calls.append(f"play {prompt} {language} {escape!r}")
        self.played.append((prompt, language))
        return self._next(f"play {prompt}") if escape else ""

    async def read_key(self, timeout: float) -> str:
        self.calls.append(f"read_key {timeout}")
        return self._next("read_key")

    def understands(self, language: str) -> bool:
        return True

    async def ask(self, prompt: str, language: str, escape: str, timeout: float) -> str:
        """Asterisk's GET OPTION: the prompt (a key may cut it short), then the wait."""
        return await self.play(prompt, language, escape) or await self.read_key(timeout)

    async def read_digits(self, prompt: str, language: str, max_digits: int, timeout: float) -> str:
        self.calls.append(f"read_digits {prompt} {language} {max_digits} {timeout}")
        self.played.append((prompt, language))
        return self._next(f"read_digits {prompt}")

    async def set_variable(self, name: str, value: str) -> None:
        self.calls.append(f"set {name}={value}")
        self.variables[name] = value

    async def record(self, name: str, max_seconds: float, silence_seconds: float) -> Recording:
        """The answer is the seconds spoken (or an exception: the caller hangs up)."""
        self.calls.append(
            f"record {name.split('-', maxsplit=1)[0]} {max_seconds} {silence_seconds}"
        )
        return Recording(f"/spool/recordings/{name}.wav", float(self._next("record")))

    async def say(self, kind: str, value: str, language: str) -> None:
        self.calls.append(f"say {kind} {value} {language}")

    async def listen(self, words: Mapping[str, str], language: str, timeout: float) -> Heard:
        """Like ``read_key``; an answer ``said:<word>`` is that word spoken."""
        self.calls.append(f"read_key {timeout}")
        answer = self._next("listen")
        if answer.startswith("said:"):
            word = answer.removeprefix("said:")
            return Heard(words.get(word, ""), word if word in words else "")
        return Heard(answer)


class Crm:
    """Lookups that know one VIP by caller ID and one customer by account number."""

    def __init__(self) -> None:
        self.by_caller_id_asked: list[str] = []
        self.by_account_asked: list[str] = []

    async def by_caller_id(self, number: str) -> Customer | None:
        self.by_caller_id_asked.append(number)
        return VIP if number == VIP_NUMBER else None

    async def by_account(self, digits: str) -> Customer | None:
        self.by_account_asked.append(digits)
        return ACCOUNT_HOLDER if digits == ACCOUNT else None

    def engine(self) -> IvrEngine:
        return IvrEngine(self.by_caller_id, self.by_account)


NO_LANGUAGE: list[Answer] = ["", ""]  # silent through the language prompt and the wait after it


def steps(result: IvrResult) -> list[str]:
    return [record.step for record in result.path]


def crm_lookup(sessions: async_sessionmaker[AsyncSession], region: str = "CN") -> CrmLookup:
    """The IVR's CRM as the server wires it: a caller ID answered by its call's identification."""
    return CrmLookup(sessions, CallerIdentification(sessions, region).customer_of)


def each_call(lookup: CrmLookup) -> Lookup:
    """The caller-ID look-up a server gives each run, every question from a new call."""
    linkedids = itertools.count(1)

    async def by_caller_id(number: str) -> Customer | None:
        return await lookup.for_call(CallKey("pbx1", f"call-{next(linkedids)}"))(number)

    return by_caller_id
