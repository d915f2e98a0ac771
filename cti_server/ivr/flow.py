"""IVR flows: what a caller walks through, declared in YAML files in ``ivr_flows/``.

A flow is a set of named steps and a start step. Each step says what to do and where to go
next. Loading validates the types and the graph, and every error names the file, the step and
the problem (an unknown step, a step nobody reaches, a loop with no way out, a missing prompt).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

StepName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
Prompt = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,59}$")]
Digits = Annotated[str, Field(pattern=r"^[0-9*#]$")]
Attribute = Annotated[str, Field(pattern=r"^[a-z][a-z_]{0,29}$")]
Language = Annotated[str, Field(pattern=r"^[a-z]{2}$")]
SpokenWord = Annotated[str, Field(pattern=r"^\w{1,30}$")]
PROMPT_FIELDS = ("prompt", "invalid_prompt", "ask_prompt", "pin_prompt", "pin_invalid_prompt")


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def targets(self) -> list[str]:
        """The steps this one can lead to."""
        return []


class PlayStep(_Step):
    type: Literal["play"]
    prompt: Prompt
    next: StepName

    def targets(self) -> list[str]:
        return [self.next]


class MenuStep(_Step):
    """Play a prompt, take one key; retries on timeout or an invalid key."""

    type: Literal["menu"]
    prompt: Prompt
    choices: dict[Digits, StepName] = Field(min_length=1)
    timeout: float = Field(5.0, gt=0, le=60)
    retries: int = Field(3, ge=1, le=10)
    invalid_prompt: Prompt | None = None
    on_timeout: StepName
    on_invalid: StepName
    speech: dict[Language, dict[SpokenWord, Digits]] = Field(
        default_factory=dict,
        description="per language, words a caller may say instead of pressing (word -> key)",
    )

    @model_validator(mode="after")
    def _words_choose_keys(self) -> MenuStep:
        for language, words in self.speech.items():
            for word, key in words.items():
                if key not in self.choices:
                    raise ValueError(f"speech {language}: {word!r} chooses {key!r}, no choice")
        return self

    def targets(self) -> list[str]:
        return [*self.choices.values(), self.on_timeout, self.on_invalid]


class CollectStep(_Step):
    """Collect several digits into an attribute; ``secret`` values are masked everywhere.

    Asterisk's GET DATA ends the input at ``#``, at ``max_digits`` or at the timeout: ``#`` is
    the only terminator there is, and the only one a flow may name. ``validate`` checks the form
    (``account``: digits; ``date``: a real day as YYYYMMDD; ``pin``: 4-12 digits, a secret) and
    ``allowed`` the values; a wrong entry (or none) plays ``invalid_prompt`` and asks again, up
    to ``retries`` tries in all, then ``on_fail``.
    """

    type: Literal["collect"]
    prompt: Prompt
    invalid_prompt: Prompt | None = None
    into: Attribute
    min_digits: int = Field(1, ge=1, le=32)
    max_digits: int = Field(16, ge=1, le=32)
    terminator: Literal["#"] = Field("#", description="GET DATA ends at '#': no other")
    check: Literal["account", "date", "pin"] | None = Field(None, alias="validate")
    allowed: list[Annotated[str, Field(pattern=r"^[0-9]{1,32}$")]] | None = Field(
        None, min_length=1
    )
    timeout: float = Field(8.0, gt=0, le=60)
    retries: int = Field(2, ge=1, le=10)
    secret: bool = False
    next: StepName
    on_fail: StepName

    @model_validator(mode="after")
    def _consistent(self) -> CollectStep:
        if self.min_digits > self.max_digits:
            raise ValueError("min_digits is more than max_digits")
        if self.check == "pin" and not self.secret:
            raise ValueError("validate: pin needs secret: true (a PIN is never shown)")
        if self.check == "pin" and (self.min_digits < 4 or self.max_digits > 12):
            raise ValueError("validate: pin takes 4 to 12 digits (min_digits, max_digits)")
        if self.check == "date" and not self.min_digits <= 8 <= self.max_digits:
            raise ValueError("validate: date is 8 digits (YYYYMMDD): allow 8")
        return self

    def targets(self) -> list[str]:
        return [self.next, self.on_fail]


class IdentifyStep(_Step):
    """Who is calling: the caller ID first; else ask for an account number (``ask_prompt``).

    With a ``pin_prompt``, a customer who has a PIN in the CRM is asked for it (a secret,
    never recorded or logged): only a right PIN identifies them; ``pin_retries`` wrong ones
    lead to ``not_verified``. Customers without a PIN are identified as before.
    """

    type: Literal["identify"]
    ask_prompt: Prompt | None = None
    account_digits: int = Field(8, ge=4, le=20)
    timeout: float = Field(8.0, gt=0, le=60)
    pin_prompt: Prompt | None = None
    pin_invalid_prompt: Prompt | None = None
    pin_digits: int = Field(6, ge=4, le=12, description="at most; '#' ends a shorter PIN")
    pin_retries: int = Field(3, ge=1, le=5)
    found: StepName
    not_found: StepName
    not_verified: StepName | None = None

    @model_validator(mode="after")
    def _pin_has_a_way_out(self) -> IdentifyStep:
        if (self.pin_prompt is None) != (self.not_verified is None):
            raise ValueError("pin_prompt and not_verified go together")
        return self

    def targets(self) -> list[str]:
        return [self.found, self.not_found, *([self.not_verified] if self.not_verified else [])]


class Condition(BaseModel):
    """``one_of`` compares text; ``at_least`` compares a number (e.g. ``estimated_wait``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    attribute: Attribute
    one_of: list[str] | None = Field(None, min_length=1)
    at_least: float | None = None
    goto: StepName

    @model_validator(mode="after")
    def _one_test(self) -> Condition:
        if (self.one_of is None) == (self.at_least is None):
            raise ValueError("give exactly one of one_of or at_least")
        return self

    def holds(self, value: str | None) -> bool:
        if value is None:
            return False
        if self.one_of is not None:
            return value in self.one_of
        try:
            return float(value) >= (self.at_least or 0.0)
        except ValueError:
            return False


class BranchStep(_Step):
    """The first condition whose attribute has one of the values decides; else ``default``."""

    type: Literal["branch"]
    conditions: list[Condition] = Field(min_length=1)
    default: StepName

    def targets(self) -> list[str]:
        return [*(c.goto for c in self.conditions), self.default]


class SetStep(_Step):
    type: Literal["set"]
    attributes: dict[Attribute, str] = Field(min_length=1)
    next: StepName

    def targets(self) -> list[str]:
        return [self.next]


class TransferStep(_Step):
    """Hand the call to routing (a queue), with the attributes learned so far."""

    type: Literal["transfer"]
    queue: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,40}$")]
    attributes: dict[Attribute, str] = Field(default_factory=dict)


class RecordStep(_Step):
    """Record the caller after a beep: a voicemail, or a comment on the survey."""

    type: Literal["record"]
    prompt: Prompt | None = None
    purpose: Literal["voicemail", "comment"]
    max_seconds: float = Field(60.0, gt=0, le=600)
    silence_seconds: float = Field(3.0, ge=1, le=30)
    next: StepName

    def targets(self) -> list[str]:
        return [self.next]


class LookupStep(_Step):
    """Self-service: a lookup function registered in the server answers from the CRM and
    sets attributes (e.g. ``open_cases``); ``on_fail`` when it has no answer.

    Functions that read out personal data (``last_order``) answer only callers who proved who
    they are (their PIN): for the others the flow goes ``on_unverified`` (else ``on_fail``)."""

    type: Literal["lookup"]
    function: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
    next: StepName
    on_fail: StepName
    on_unverified: StepName | None = None

    def targets(self) -> list[str]:
        return [self.next, self.on_fail, *([self.on_unverified] if self.on_unverified else [])]


class SayStep(_Step):
    """Read an attribute back in Asterisk's voice, as a number or digit by digit."""

    type: Literal["say"]
    prompt: Prompt | None = None
    attribute: Attribute
    read_as: Literal["number", "digits"] = "number"
    next: StepName

    def targets(self) -> list[str]:
        return [self.next]


class CallbackStep(_Step):
    """The caller takes a callback instead of waiting: it keeps their place as a follow-up."""

    type: Literal["callback"]
    prompt: Prompt | None = None


class HangupStep(_Step):
    type: Literal["hangup"]
    prompt: Prompt | None = None


Step = Annotated[
    PlayStep
    | MenuStep
    | CollectStep
    | IdentifyStep
    | BranchStep
    | SetStep
    | RecordStep
    | LookupStep
    | SayStep
    | TransferStep
    | CallbackStep
    | HangupStep,
    Field(discriminator="type"),
]
ENDING = (TransferStep, CallbackStep, HangupStep)


class Flow(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,39}$")]
    languages: list[Annotated[str, Field(pattern=r"^[a-z]{2}$")]] = Field(min_length=1)
    start: StepName
    steps: dict[StepName, Step] = Field(min_length=1)

    def prompts(self) -> set[str]:
        found = set()
        for step in self.steps.values():
            for field in PROMPT_FIELDS:
                value = getattr(step, field, None)
                if value:
                    found.add(value)
        return found


class FlowError(ValueError):
    """A flow file that cannot be used; the message names the file, the step and the problem."""


def load_flow(
    path: Path, prompt_dir: Path | None = None, functions: Collection[str] | None = None
) -> Flow:
    """Read, validate and check one flow file; ``functions``: the lookup functions registered
    in the server (None: not checked)."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise FlowError(f"{path.name}: cannot read: {exc}") from None
    except yaml.YAMLError as exc:
        raise FlowError(f"{path.name}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise FlowError(f"{path.name}: a flow is a mapping with name, languages, start, steps")
    try:
        flow = Flow.model_validate(raw)
    except ValidationError as exc:
        raise FlowError(_describe(path.name, exc)) from None
    problems = check_graph(flow) + check_values(flow, functions)
    if prompt_dir is not None:
        problems += check_prompts(flow, prompt_dir)
    if problems:
        raise FlowError(f"{path.name}: " + "; ".join(problems))
    return flow


def _describe(file: str, exc: ValidationError) -> str:
    lines = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = [str(part) for part in error["loc"]]
        if loc[:1] == ["steps"] and len(loc) > 1:
            where = f"step {loc[1]!r}" + (f", {'.'.join(loc[3:])}" if len(loc) > 3 else "")
        else:
            where = ".".join(loc) or "flow"
        lines.append(f"{where}: {error['msg']}")
    return f"{file}: " + "; ".join(lines)


def check_graph(flow: Flow) -> list[str]:
    """Unknown targets, unreachable steps, and loops that can never end."""
    problems = []
    if flow.start not in flow.steps:
        problems.append(f"start: unknown step {flow.start!r}")
    for name, step in flow.steps.items():
        for target in step.targets():
            if target not in flow.steps:
                problems.append(f"step {name!r}: goes to unknown step {target!r}")
    if problems:
        return problems
    reachable = _reach(flow, [flow.start])
    for name in flow.steps:
        if name not in reachable:
            problems.append(f"step {name!r}: unreachable from {flow.start!r}")
    for name in sorted(reachable):
        if not any(isinstance(flow.steps[s], ENDING) for s in _reach(flow, [name])):
            problems.append(f"step {name!r}: loops with no way to a transfer or hang-up")
    return problems


def _reach(flow: Flow, starts: Iterable[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(starts)
    while todo:
        name = todo.pop()
        if name in seen or name not in flow.steps:
            continue
        seen.add(name)
        todo.extend(flow.steps[name].targets())
    return seen


def check_values(flow: Flow, functions: Collection[str] | None) -> list[str]:
    """What the types cannot say: a language the flow has no prompts in, a lookup function the
    server does not have (each would fail only when a caller got there)."""
    problems = []
    for name, step in flow.steps.items():
        language = step.attributes.get("language") if isinstance(step, SetStep) else None
        if language is not None and language not in flow.languages:
            problems.append(
                f"step {name!r}: sets language {language!r}, not one of the flow's languages "
                f"({', '.join(flow.languages)})"
            )
        if functions is None or not isinstance(step, LookupStep):
            continue
        if step.function not in functions:
            known = ", ".join(sorted(functions)) or "none"
            problems.append(
                f"step {name!r}: lookup function {step.function!r} is not registered "
                f"(known: {known})"
            )
    return problems


def check_prompts(flow: Flow, prompt_dir: Path) -> list[str]:
    """Every prompt must exist as ``<prompt_dir>/<language>/<prompt>.txt`` or ``.wav``."""
    missing = []
    for name, step in flow.steps.items():
        for field in PROMPT_FIELDS:
            prompt = getattr(step, field, None)
            if not prompt:
                continue
            for language in flow.languages:
                base = prompt_dir / language / prompt
                if not (base.with_suffix(".txt").is_file() or base.with_suffix(".wav").is_file()):
                    missing.append(
                        f"step {name!r}: prompt {prompt!r} missing in {language!r} "
                        f"(no {language}/{prompt}.txt or .wav)"
                    )
    return missing


def load_flows(directory: Path) -> dict[str, Flow]:
    """Every ``*.yaml`` flow in ``directory``; the first broken one raises FlowError."""
    flows: dict[str, Flow] = {}
    prompts = directory / "prompts"
    for path in sorted(directory.glob("*.yaml")):
        if path.name == "calendar.yaml":  # opening hours, not a flow
            continue
        flow = load_flow(path, prompts if prompts.is_dir() else None)
        if flow.name in flows:
            raise FlowError(f"{path.name}: flow name {flow.name!r} is used twice")
        flows[flow.name] = flow
    return flows
