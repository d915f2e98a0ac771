"""Simulated customers' personas: a language, what they say to the agent, whether it is a
complaint (explicit, implicit or none), how they rate the call in the survey after the agent
hangs up, and whether they call again about the same thing, from ``personas.yaml`` beside this
module; and the IVR menu's choices as a customer of each language says them."""

from __future__ import annotations

import random
from functools import cache
from importlib import resources
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

VOICES = {"en": "en", "zh": "cmn"}  # espeak-ng voices
SPOKEN_CHOICES = {  # the IVR menu's choices said aloud, in words its speech menu knows
    "en": {
        "billing": "Billing, please.",
        "sales": "Sales, please.",
        "operator": "An agent, please.",
    },
    "zh": {"billing": "账单。", "sales": "销售。", "operator": "人工。"},
}


def choice_sound(language: str, intent: str) -> str:
    """The sound of a customer of ``language`` saying the menu choice ``intent``."""
    return f"cti/sim-say-{language}-{intent}"


class Persona(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,30}$")]
    language: Literal["en", "zh"]
    weight: float = Field(1.0, gt=0)
    complaint: Literal["none", "explicit", "implicit"]
    says: Annotated[str, Field(min_length=1, max_length=300)]
    survey: int | None = Field(None, ge=1, le=5)
    """The score they key in the survey after the agent hangs up; None: they do not rate."""
    calls_back: bool = False
    """They call again about the same thing (the same menu choice) a little later."""

    @property
    def sound(self) -> str:
        """The sound Asterisk plays for this persona's line."""
        return f"cti/sim-{self.name}"


class _Personas(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    personas: list[Persona] = Field(min_length=1)


class PersonaError(ValueError):
    """A personas file that cannot be used; the message names the problem."""


@cache
def personas() -> tuple[Persona, ...]:
    text = resources.files(__package__).joinpath("personas.yaml").read_text(encoding="utf-8")
    return parse_personas(text)


def parse_personas(text: str) -> tuple[Persona, ...]:
    try:
        return tuple(_Personas.model_validate(yaml.safe_load(text)).personas)
    except (yaml.YAMLError, ValidationError) as exc:
        raise PersonaError(f"personas.yaml: {exc}") from None


def persona_sounds() -> dict[str, dict[str, str]]:
    """Per espeak-ng voice, the sounds to render once: ``{voice: {sound name: text}}``."""
    by_voice: dict[str, dict[str, str]] = {}
    for persona in personas():
        by_voice.setdefault(VOICES[persona.language], {})[f"sim-{persona.name}"] = persona.says
    for language, choices in SPOKEN_CHOICES.items():
        for intent, said in choices.items():
            name = choice_sound(language, intent).removeprefix("cti/")
            by_voice.setdefault(VOICES[language], {})[name] = said
    return by_voice


def pick(rng: random.Random, language: str | None = None) -> Persona:
    """A persona by weight; of ``language`` when the customer has one on file."""
    pool = [p for p in personas() if language is None or p.language == language] or list(personas())
    return rng.choices(pool, weights=[p.weight for p in pool])[0]
