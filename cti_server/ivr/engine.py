"""The IVR engine: walks a flow for one call through a small ``Channel`` protocol.

It never knows which transport carries the call (FastAGI or classic AGI): both adapters implement
:class:`Channel`. Every step is recorded (name, time, input, masked when secret) so that the
interaction shows the caller's path, also when they hang up half-way.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from cti_server.events import IvrOutcome
from cti_server.ivr.flow import (
    BranchStep,
    CallbackStep,
    CollectStep,
    Flow,
    HangupStep,
    IdentifyStep,
    LookupStep,
    MenuStep,
    PlayStep,
    RecordStep,
    SayStep,
    SetStep,
    TransferStep,
)
from cti_server.speech.heard import Heard

log = logging.getLogger(__name__)

MASK = "***"
MAX_STEPS = 200  # a flow is checked for loops without exit; this bounds the rest (retries)


@dataclass(frozen=True)
class Recording:
    """A recording made in the IVR, where Asterisk wrote it; ``seconds`` < 0: unknown."""

    path: str
    seconds: float


class CallerGone(Exception):
    """The caller hung up (or the channel died) during the IVR."""

    def __init__(self, message: str = "", recording: Recording | None = None) -> None:
        super().__init__(message)
        self.recording = recording


class Channel(Protocol):
    """What the engine needs of a call; FastAGI and classic AGI both provide it."""

    async def play(self, prompt: str, language: str, escape: str = "") -> str:
        """Play a prompt; return the key that interrupted it, or ``""``."""

    async def read_key(self, timeout: float) -> str:
        """One key within ``timeout`` seconds, or ``""``."""

    def understands(self, language: str) -> bool:
        """Whether :meth:`listen` can hear words in ``language`` (else it only takes keys)."""

    async def ask(self, prompt: str, language: str, escape: str, timeout: float) -> str:
        """Play a prompt and wait ``timeout`` seconds after it for one of ``escape``, in one
        command: Asterisk drops keys pressed between two AGI commands, so a caller who pressed
        right as a prompt ended lost the key when playing and reading were separate."""

    async def read_digits(self, prompt: str, language: str, max_digits: int, timeout: float) -> str:
        """Play ``prompt`` and collect up to ``max_digits`` (``#`` ends), ``""`` on timeout."""

    async def set_variable(self, name: str, value: str) -> None: ...

    async def record(self, name: str, max_seconds: float, silence_seconds: float) -> Recording:
        """Record the caller after a beep as ``recordings/<name>.wav`` in Asterisk's spool
        directory, until ``#``, silence or ``max_seconds``. A caller who hangs up while
        recording (as most do after a voicemail) raises :class:`CallerGone` carrying it."""

    async def say(self, kind: str, value: str, language: str) -> None:
        """Read ``value`` back in Asterisk's own voice: ``number`` or ``digits``."""

    async def listen(self, words: Mapping[str, str], language: str, timeout: float) -> Heard:
        """Wait up to ``timeout`` for one of ``words`` (word -> key) spoken, or a key pressed.
        A transport without speech waits for a key only."""


@dataclass
class Customer:
    """What the IVR learns of the caller from the CRM."""

    customer_id: int
    name: str
    tier: str
    language: str | None
    has_pin: bool = False  # an IVR PIN is on file: ``identify`` with a ``pin_prompt`` asks it
    verified: bool = False  # proved who they are (their PIN), not only named by caller ID
    pin_locked: bool = False  # too many wrong PINs over recent calls: not asked until it opens


Lookup = Callable[[str], Awaitable[Customer | None]]
SelfService = Callable[[str, Customer | None], Awaitable[dict[str, str] | None]]
"""``(function name, identified customer)`` → attributes to set, or None: no answer."""


class PinCheck(StrEnum):
    """The CRM's answer to a PIN typed for a customer."""

    MATCH = "match"
    WRONG = "wrong"
    LOCKED = "locked"  # too many wrong PINs for this customer, over every call: not checked


VerifyPin = Callable[[Customer, str], Awaitable[PinCheck]]
"""``(customer, PIN digits)`` → whether the PIN is theirs (checked by the CRM, argon2, which
counts wrong ones per customer across calls and locks the PIN after too many)."""


class NotVerified(Exception):
    """A self-service lookup that reads out personal data, asked for a caller who has not
    proved who they are: caller ID alone names a customer, it does not authenticate one."""


PIN_MIN_DIGITS, PIN_MAX_DIGITS = 4, 12


@dataclass
class StepRecord:
    step: str
    kind: str
    seconds: float
    input: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "type": self.kind,
            "seconds": round(self.seconds, 3),
            "input": self.input,
        }


@dataclass
class IvrResult:
    """How the caller left the IVR: handed to a queue, hung up by the flow, or gone."""

    outcome: IvrOutcome
    queue: str = ""
    attributes: dict[str, str] = field(default_factory=dict)
    customer: Customer | None = None
    path: list[StepRecord] = field(default_factory=list)
    inputs: dict[str, str] = field(default_factory=dict)
    languages: list[str] = field(default_factory=list)
    secrets: dict[str, str] = field(default_factory=dict)  # for the flow's own checks only
    recordings: list[Recording] = field(default_factory=list)

    def recording(self, purpose: str) -> Recording | None:
        """The last recording made for ``purpose`` (``voicemail``, ``comment``)."""
        mark = f"/{purpose}-"
        return next((r for r in reversed(self.recordings) if mark in r.path), None)


async def _nobody(_number: str) -> Customer | None:
    return None


@dataclass(frozen=True, slots=True)
class _Caller:
    """The caller ID of the call walked, and how to learn whom it names."""

    number: str
    lookup: Lookup


class IvrEngine:
    """Walks flows. ``by_caller_id`` answers a run that brings no look-up of its own (a server
    brings the call's identification to every run); None: caller IDs name nobody."""

    def __init__(
        self,
        by_caller_id: Lookup | None,
        by_account: Lookup,
        self_service: SelfService | None = None,
        *,
        verify_pin: VerifyPin | None = None,
    ) -> None:
        self._by_caller_id = by_caller_id
        self._by_account = by_account
        self._self_service = self_service
        self._verify_pin = verify_pin

    async def run(
        self,
        flow: Flow,
        channel: Channel,
        caller_number: str,
        language: str | None = None,
        *,
        known: dict[str, str] | None = None,
        by_caller_id: Lookup | None = None,
    ) -> IvrResult:
        """Walk ``flow``; ``known`` attributes (``estimated_wait``...) are set from the start.
        ``by_caller_id``: who the caller ID names for this call (its identification, asked of the
        CRM once per call), else the engine's own look-up."""
        caller = _Caller(caller_number, by_caller_id or self._by_caller_id or _nobody)
        result = IvrResult(outcome="caller_gone", languages=list(flow.languages))
        attributes = result.attributes
        attributes.update(known or {})
        attributes["language"] = language if language in flow.languages else flow.languages[0]
        name = flow.start
        started = time.monotonic()
        try:
            for _ in range(MAX_STEPS):
                step = flow.steps[name]
                started = time.monotonic()
                record = StepRecord(name, step.type, 0.0)
                result.path.append(record)
                next_name = await self._step(step, channel, caller, result, record)
                record.seconds = time.monotonic() - started
                if next_name is None:
                    return result
                name = next_name
            result.outcome = "hangup"  # a runaway flow ends, it never spins
            return result
        except CallerGone as gone:
            if result.path:  # the step the caller hung up in lasted until then
                result.path[-1].seconds = time.monotonic() - started
            if gone.recording is not None:
                result.recordings.append(gone.recording)
            result.outcome = "caller_gone"
            return result

    async def _step(  # noqa: PLR0911 - one return per kind of step
        self, step: Any, channel: Channel, caller: _Caller, result: IvrResult, record: StepRecord
    ) -> str | None:
        language = result.attributes["language"]
        if isinstance(step, PlayStep):
            await channel.play(step.prompt, language)
            return step.next
        if isinstance(step, MenuStep):
            return await self._menu(step, channel, language, record)
        if isinstance(step, CollectStep):
            return await self._collect(step, channel, language, result, record)
        if isinstance(step, IdentifyStep):
            return await self._identify(step, channel, caller, result, record)
        if isinstance(step, RecordStep):
            return await self._record(step, channel, language, result, record)
        if isinstance(step, LookupStep):
            return await self._lookup(step, result, record)
        if isinstance(step, SayStep):
            return await self._say(step, channel, language, result, record)
        if isinstance(step, CallbackStep | HangupStep):
            if step.prompt:
                await channel.play(step.prompt, language)
            result.outcome = "callback" if isinstance(step, CallbackStep) else "hangup"
            return None
        return self._decide(step, result)

    @staticmethod
    def _decide(step: Any, result: IvrResult) -> str | None:
        """The steps that only think: branch, set, transfer."""
        if isinstance(step, BranchStep):
            for condition in step.conditions:
                if condition.holds(result.attributes.get(condition.attribute)):
                    return str(condition.goto)
            return str(step.default)
        if isinstance(step, SetStep):
            result.attributes.update(step.attributes)
            return str(step.next)
        if isinstance(step, TransferStep):
            result.attributes.update(step.attributes)
            result.outcome, result.queue = "transfer", step.queue
            return None
        raise TypeError(f"unknown step type {type(step).__name__}")

    async def _record(
        self,
        step: RecordStep,
        channel: Channel,
        language: str,
        result: IvrResult,
        record: StepRecord,
    ) -> str:
        if step.prompt:
            await channel.play(step.prompt, language)
        name = f"ivr/{step.purpose}-{uuid.uuid4().hex}"
        made = await channel.record(name, step.max_seconds, step.silence_seconds)
        if made.path:
            result.recordings.append(made)
            record.input = f"{made.seconds:g} s"
        return step.next

    @staticmethod
    async def _say(
        step: SayStep, channel: Channel, language: str, result: IvrResult, record: StepRecord
    ) -> str:
        if step.prompt:
            await channel.play(step.prompt, language)
        value = result.attributes.get(step.attribute, "")
        if value.isascii() and value.isdigit():
            await channel.say(step.read_as, value, language)
        record.input = value
        return step.next

    async def _lookup(self, step: LookupStep, result: IvrResult, record: StepRecord) -> str:
        """A failing lookup sends the caller on ``on_fail``; it never ends the call."""
        found = None
        if self._self_service is not None:
            try:
                found = await self._self_service(step.function, result.customer)
            except NotVerified:
                record.input = "not verified"
                return step.on_unverified or step.on_fail
            except Exception:
                log.exception("IVR lookup %r failed", step.function)
        if found is None:
            record.input = "no answer"
            return step.on_fail
        result.attributes.update(found)
        record.input = ", ".join(f"{k}={v}" for k, v in sorted(found.items()))
        return step.next

    async def _menu(
        self, step: MenuStep, channel: Channel, language: str, record: StepRecord
    ) -> str:
        escape = "0123456789*#"  # any key stops the prompt: a wrong one must be heard too
        words = step.speech.get(language, {})
        pressed: list[str] = []
        for _ in range(step.retries):
            if words and channel.understands(language):
                key = await channel.play(step.prompt, language, escape)
                heard = await channel.listen(words, language, step.timeout) if not key else None
                if heard is not None:
                    key = heard.key
                if heard is not None and heard.word:
                    pressed.append(f"{key} (said {heard.word})")
                elif key:
                    pressed.append(key)
            else:
                key = await channel.ask(step.prompt, language, escape, step.timeout)
                if key:
                    pressed.append(key)
            if key in step.choices:
                record.input = " ".join(pressed)
                return step.choices[key]
            if key and step.invalid_prompt:
                await channel.play(step.invalid_prompt, language)
        record.input = " ".join(pressed)
        return step.on_invalid if pressed else step.on_timeout

    async def _collect(
        self,
        step: CollectStep,
        channel: Channel,
        language: str,
        result: IvrResult,
        record: StepRecord,
    ) -> str:
        """Ask until an entry passes (or ``retries`` tries); each try is recorded with why it
        was refused, a secret one as ``***``."""
        tries: list[str] = []
        for attempt in range(step.retries):
            digits = await channel.read_digits(step.prompt, language, step.max_digits, step.timeout)
            problem = entry_problem(step, digits)
            if problem is None:
                # a secret never joins the attributes: those are published and stored
                (result.secrets if step.secret else result.attributes)[step.into] = digits
                shown = MASK if step.secret else digits
                result.inputs[step.into] = shown
                record.input = " ".join([*tries, shown])
                return step.next
            typed = MASK if step.secret else digits[: step.max_digits]
            tries.append(f"{typed} ({problem})" if digits else f"({problem})")
            if step.invalid_prompt and attempt + 1 < step.retries:
                await channel.play(step.invalid_prompt, language)
        record.input = " ".join(tries)
        return step.on_fail

    async def _identify(
        self,
        step: IdentifyStep,
        channel: Channel,
        caller: _Caller,
        result: IvrResult,
        record: StepRecord,
    ) -> str:
        customer = await caller.lookup(caller.number) if caller.number else None
        record.input = "caller id"
        if customer is None and step.ask_prompt:
            account = await channel.read_digits(
                step.ask_prompt, result.attributes["language"], step.account_digits, step.timeout
            )
            if len(account) > step.account_digits or not (account.isascii() and account.isdigit()):
                # Asterisk stops at account_digits: anything longer is no account to look up
                record.input = f"account: {len(account)} characters, refused" if account else ""
                record.input = record.input or "account: none given"
                result.inputs["account"] = ""
            else:
                record.input = f"account {account}"
                result.inputs["account"] = account
                customer = await self._by_account(account)
        if customer is None:
            return step.not_found
        verified = False
        if step.pin_prompt and step.not_verified and customer.has_pin:
            check = await self._check_pin(step, channel, customer, result)
            verified = check is PinCheck.MATCH
            result.attributes["pin_verified"] = "yes" if verified else "no"
            if check is PinCheck.LOCKED:  # not asked: the desk sees the lock and helps
                result.attributes["pin_locked"] = "yes"
                record.input += ", pin locked"
            else:
                result.inputs["pin"] = MASK
                record.input += ", pin verified" if verified else ", pin not verified"
            if not verified:
                return step.not_verified
        customer = dataclasses.replace(customer, verified=verified)
        result.customer = customer
        result.attributes.update(
            tier=customer.tier,
            customer_id=str(customer.customer_id),
            verified="pin" if verified else "no",
        )
        if customer.language in result.languages:
            result.attributes["language"] = customer.language
        return step.found

    async def _check_pin(
        self, step: IdentifyStep, channel: Channel, customer: Customer, result: IvrResult
    ) -> PinCheck:
        """Up to ``pin_retries`` tries; the digits go to the CRM's check and nowhere else.

        The CRM counts wrong PINs per customer over every call (a caller who hangs up and calls
        again does not get fresh tries) and answers LOCKED, unchecked, once there were too many."""
        if self._verify_pin is None or step.pin_prompt is None:
            log.warning("IVR: no PIN check here, customer %d not verified", customer.customer_id)
            return PinCheck.WRONG
        if customer.pin_locked:
            return PinCheck.LOCKED
        # asked in the customer's language: whoever the number belongs to would understand it
        own = customer.language
        language = own if own in result.languages else result.attributes["language"]
        for attempt in range(step.pin_retries):
            pin = await channel.read_digits(
                step.pin_prompt, language, step.pin_digits, step.timeout
            )
            well_formed = pin.isascii() and pin.isdigit()
            if well_formed and PIN_MIN_DIGITS <= len(pin) <= step.pin_digits:
                check = await self._verify_pin(customer, pin)  # only well-formed PINs cost one
                if check is not PinCheck.WRONG:
                    return check
            if step.pin_invalid_prompt and attempt + 1 < step.pin_retries:
                await channel.play(step.pin_invalid_prompt, language)
        return PinCheck.WRONG


def entry_problem(step: CollectStep, digits: str) -> str | None:
    """Why ``digits`` cannot be the step's value (None: it can); never says the value."""
    if not digits:
        return "nothing typed"
    if not (digits.isascii() and digits.isdigit()):
        return "not digits"
    if not step.min_digits <= len(digits) <= step.max_digits:
        return f"{len(digits)} digits, wanted {step.min_digits}-{step.max_digits}"
    if step.allowed is not None and digits not in step.allowed:
        return "not one of the choices"
    return _kind_problem(step, digits)


def _kind_problem(step: CollectStep, digits: str) -> str | None:
    """What ``validate`` asks beyond digits and length."""
    if step.check == "date":
        try:
            datetime.strptime(digits, "%Y%m%d")
        except ValueError:
            return "not a date (YYYYMMDD)"
    if step.check == "pin" and not PIN_MIN_DIGITS <= len(digits) <= PIN_MAX_DIGITS:
        return "not a PIN"
    return None
