"""The routing policy: a validated YAML file, so supervisors change routing without code.

Effective priority of a waiting call, in *virtual seconds*::

    head_start[tier] + aging * waited + value_weight * value_score
                     + (callback_head_start if callback) + supervisor's priority_adjust

Every caller ages at the same rate, so a head start is a fixed lead that waiting erodes: a
``slow`` caller who has waited ``(head_start[fast] - head_start[slow]) / aging`` seconds ties a
fresh ``fast`` caller and beats them from then on (ties go to the earlier arrival). The same
sum bounds starvation: once a caller's priority reaches the largest bonus any new caller can
bring, no later arrival ever overtakes them again (:meth:`Policy.starvation_bound`).

Which agents may take a call depends on how long it has waited (:class:`Stage`): the required
skill level relaxes, then the skills are waived (the language still counts), then overflow
groups join.
"""

from __future__ import annotations

from bisect import bisect_right
from functools import cached_property
from importlib import resources
from itertools import pairwise
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cti_server.routing.model import MAX_LEVEL

BUILTIN_POLICIES = ("default", "bank-fifo", "bank-observed")
"""Policies shipped in ``cti_server/routing/policies/``: ours; the bank's rule as documented
(FIFO with the priority customers' 90 virtual seconds), the yardstick of the what-if simulator;
and the bank's rule as its agents' choices show it (prospects and internet users 90 s behind)."""

Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class PolicyError(ValueError):
    """A policy that cannot be used; the message names the source, the key and the problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Tier(_Strict):
    head_start: Seconds = 0.0
    """Virtual seconds of waiting credited at arrival (the bank gave its best customers 90)."""


class Priority(_Strict):
    tiers: dict[str, Tier] = Field(min_length=1)
    default_tier: str = "standard"
    """The tier of calls whose tier is unknown to the policy."""
    aging: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    """Virtual seconds gained per second waited, the same for everyone."""
    value_weight: Seconds = 0.0
    """Virtual seconds for a value score of 1 (scores are clamped to 0..1)."""
    callback_head_start: float = Field(default=0.0, allow_inf_nan=False)
    """Added for callbacks; negative lets callers who hold the line go first."""

    @model_validator(mode="after")
    def _known_default(self) -> Priority:
        if self.default_tier not in self.tiers:
            raise ValueError(
                f"default_tier {self.default_tier!r} is not one of the tiers {sorted(self.tiers)}"
            )
        return self


class Stage(_Strict):
    """Who may take a call once it has waited ``after`` seconds (until the next stage)."""

    after: Seconds
    min_level: int = Field(ge=0, le=MAX_LEVEL)
    """Every required skill at this level or above; 0 waives the skills (language still counts)."""
    groups: tuple[str, ...] = Field(default=("agents",), min_length=1)
    label: str | None = None
    """The rule's name in explanations; derived from the change to the previous stage if absent."""


class PreferredAgent(_Strict):
    window: Seconds = 0.0
    """For this long the call goes to its preferred agent only (waiting while they are busy)."""


class RingNoAnswer(_Strict):
    timeout: float = Field(default=15.0, gt=0, allow_inf_nan=False)
    reason: str = Field(default="ring-no-answer", min_length=1)
    """The not-ready reason given to an agent who let a call ring out."""


class Policy(_Strict):
    name: str = Field(min_length=1)
    priority: Priority
    eligibility: tuple[Stage, ...] = Field(min_length=1)
    preferred_agent: PreferredAgent = PreferredAgent()
    ring_no_answer: RingNoAnswer = RingNoAnswer()
    explain_candidates: int = Field(default=3, ge=1, le=20)
    """How many of the best candidates each explanation lists."""

    @model_validator(mode="after")
    def _timeline(self) -> Policy:
        afters = [stage.after for stage in self.eligibility]
        if afters[0] != 0:
            raise ValueError(f"eligibility: the first stage must start after 0 s, not {afters[0]}")
        if any(b <= a for a, b in pairwise(afters)):
            raise ValueError(f"eligibility: 'after' must increase from stage to stage: {afters}")
        return self

    @cached_property
    def _afters(self) -> list[float]:
        return [stage.after for stage in self.eligibility]

    @cached_property
    def _labels(self) -> list[str]:
        return [_label(self.eligibility, i) for i in range(len(self.eligibility))]

    def stage_at(self, waited: float) -> int:
        """Index of the eligibility stage in force for a call that has waited ``waited`` s."""
        return max(0, bisect_right(self._afters, waited) - 1)

    def stage_label(self, index: int) -> str:
        return self._labels[index]

    def head_start(self, tier: str) -> float:
        tiers = self.priority.tiers
        return (tiers.get(tier) or tiers[self.priority.default_tier]).head_start

    def overtake_bound(self, slow: str, fast: str) -> float:
        """Seconds a ``slow``-tier caller must have waited to go before a fresh ``fast`` one
        (plain live calls, value 0, no supervisor change): equal there, ahead after."""
        return max(0.0, (self.head_start(fast) - self.head_start(slow)) / self.priority.aging)

    def starvation_bound(self, tier: str) -> float:
        """Seconds after which no later arrival overtakes a live ``tier`` caller of value 0
        (short of a supervisor's change): their wait is then bounded by the calls already
        ahead of them."""
        p = self.priority
        best = max(t.head_start for t in p.tiers.values()) + p.value_weight
        best += max(0.0, p.callback_head_start)
        return max(0.0, (best - self.head_start(tier)) / p.aging)


def _label(stages: tuple[Stage, ...], index: int) -> str:
    stage = stages[index]
    if stage.label:
        return stage.label
    if index == 0:
        return f"skill level>={stage.min_level}" if stage.min_level else "any agent"
    before = stages[index - 1]
    changes = []
    if stage.min_level < before.min_level:
        to = f"level>={stage.min_level}" if stage.min_level else "any agent with the language"
        changes.append(f"skill relaxed after {stage.after:g} s to {to}")
    if set(stage.groups) - set(before.groups):
        changes.append(f"overflow group after {stage.after:g} s")
    return "; ".join(changes) or f"stage after {stage.after:g} s"


def parse_policy(text: str, source: str) -> Policy:
    """A policy from YAML text; errors name ``source`` and each bad key."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{source}: not YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise PolicyError(f"{source}: a policy is a mapping of keys, got {type(raw).__name__}")
    try:
        return Policy.model_validate(raw)
    except ValidationError as exc:
        raise PolicyError(f"{source}: {_describe(exc)}") from None


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in error["loc"]) or "policy"
        problems.append(f"{where}: {error['msg']}")
    return "; ".join(problems)


def load_policy(path: Path) -> Policy:
    """The policy in ``path`` (YAML), validated."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return parse_policy(text, path.name)


def builtin_policy(name: str = "default") -> Policy:
    """One of :data:`BUILTIN_POLICIES`, read from the package."""
    if name not in BUILTIN_POLICIES:
        raise PolicyError(f"no built-in policy {name!r}: choose one of {list(BUILTIN_POLICIES)}")
    source = resources.files("cti_server.routing").joinpath("policies", f"{name}.yaml")
    return parse_policy(source.read_text(encoding="utf-8"), f"{name}.yaml")


def policy_from(spec: str) -> Policy:
    """A built-in policy by name, else the file at ``spec``."""
    if spec in BUILTIN_POLICIES:
        return builtin_policy(spec)
    path = Path(spec)
    if not path.exists():
        raise PolicyError(f"{spec}: no such file, nor a built-in policy {list(BUILTIN_POLICIES)}")
    return load_policy(path)


def builtin_policy_path(name: str = "default") -> Path:
    """The packaged file of a built-in policy: what the live router watches by default."""
    if name not in BUILTIN_POLICIES:
        raise PolicyError(f"no built-in policy {name!r}: choose one of {list(BUILTIN_POLICIES)}")
    return Path(str(resources.files("cti_server.routing").joinpath("policies", f"{name}.yaml")))
