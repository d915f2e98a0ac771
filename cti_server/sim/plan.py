"""One simulated call: who calls, what they press in the IVR, what they say to the agent.

The keys follow ``ivr_flows/main.yaml``: a customer the CRM knows by caller ID hears the
welcome and presses a menu key; a stranger chooses a language, gives an account number when
they have one (a customer calling from another phone) or just ``#``, then a menu key. ``w`` is
half a second of silence between keys, timed to the prompts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from cti_server.sim.arrivals import Arrival
from cti_server.sim.personas import Persona, choice_sound, pick

MENU_KEYS = (("1", "billing", 0.45), ("2", "sales", 0.35), ("0", "operator", 0.2))
LANGUAGE_KEYS = {"en": "1", "zh": "2"}


@dataclass(frozen=True, slots=True)
class Caller:
    """A customer from the CRM, as the simulator needs them."""

    number: str
    name: str
    tier: str
    language: str | None
    account: str | None  # digits only


@dataclass(frozen=True, slots=True)
class CallPlan:
    number: str
    name: str
    tier: str
    known: bool
    intent: str
    dtmf: str
    pre_wait: float
    persona: Persona
    patience: float
    talk: float
    again: bool = False
    """This customer called about the same thing before (a call back)."""


def plan_call(arrival: Arrival, caller: Caller | None, rng: random.Random) -> CallPlan:
    """``caller`` None: a stranger, from a number the CRM does not know."""
    key, intent = _menu_choice(rng)
    if caller is not None and rng.random() < 0.9:  # most customers call from their own phone
        persona = pick(rng, caller.language)
        return CallPlan(
            number=caller.number,
            name=caller.name,
            tier=caller.tier,
            known=True,
            intent=intent,
            dtmf=key,
            pre_wait=3.0,
            persona=persona,
            patience=arrival.patience,
            talk=arrival.talk,
        )
    persona = pick(rng, caller.language if caller else None)
    account = f"{caller.account}#" if caller is not None and caller.account else "#"
    return CallPlan(
        number="+86139" + "".join(rng.choices("0123456789", k=8)),
        name=caller.name if caller else "",
        tier=caller.tier if caller and caller.account else "unknown",
        known=False,
        intent=intent,
        dtmf=f"{LANGUAGE_KEYS[persona.language]}wwww{account}wwwwwwww{key}",
        pre_wait=2.0,
        persona=persona,
        patience=arrival.patience + 6.0,  # the language menu and the account take longer
        talk=arrival.talk,
    )


def spoken(plan: CallPlan) -> tuple[str, str]:
    """The keys and the sound of a customer who says their menu choice as they key it (as a
    person does when the menu also listens): the keys with ``!`` where the simulated customer
    speaks (before the menu key, the last one), and the sound they say there."""
    keys = plan.dtmf
    return f"{keys[:-1]}!{keys[-1:]}", choice_sound(plan.persona.language, plan.intent)


def call_again(plan: CallPlan) -> CallPlan | None:
    """The same customer calling again about the same thing (the same keys, so the same menu
    choice), when their persona does; once, and only where the CRM can tell it is them again
    (their own phone, or an account number given)."""
    if not plan.persona.calls_back or plan.again or plan.tier == "unknown":
        return None
    return replace(plan, again=True)


def _menu_choice(rng: random.Random) -> tuple[str, str]:
    key, intent, _ = rng.choices(MENU_KEYS, weights=[w for *_, w in MENU_KEYS])[0]
    return key, intent
