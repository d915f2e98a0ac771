"""Simulated traffic: arrivals, personas and the keys each caller will press."""

from __future__ import annotations

import random
import statistics
from datetime import date
from itertools import islice, pairwise

import pytest
from click.testing import CliRunner

from cti_server.cli.main import main
from cti_server.sim.arrivals import IVR_SECONDS, MIN_TALK, Arrival, bank_day, poisson
from cti_server.sim.callers import choose_caller
from cti_server.sim.personas import (
    SPOKEN_CHOICES,
    PersonaError,
    parse_personas,
    persona_sounds,
    personas,
)
from cti_server.sim.plan import MENU_KEYS, Caller, call_again, plan_call, spoken
from tests.support.replay import DATA

BANK = DATA / "callcenter_traffic" / "august_1999_calls.csv.gz"
ARRIVAL = Arrival(at=0.0, patience=40.0, talk=10.0)
VIP = Caller("+8613911112222", "王总", "platinum", "zh", "123456789")


def test_poisson_arrivals_come_at_the_asked_rate() -> None:
    arrivals = list(islice(poisson(6.0, random.Random(7)), 3000))
    gaps = [b.at - a.at for a, b in pairwise(arrivals)]
    assert statistics.mean(gaps) == pytest.approx(10.0, rel=0.05)  # 6 a minute
    assert all(a.patience > IVR_SECONDS and a.talk >= MIN_TALK for a in arrivals)


def test_a_rate_of_zero_is_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        next(poisson(0, random.Random()))


@pytest.mark.skipif(not BANK.exists(), reason=f"shared data {BANK} is absent")
def test_a_bank_day_replays_its_arrivals_faster() -> None:
    arrivals = bank_day(BANK, date(1999, 8, 2), speed=60)
    assert 500 < len(arrivals) < 3000
    assert arrivals[0].at == 0
    assert arrivals[-1].at < 24 * 60  # a day in less than 24 minutes
    assert {a.klass for a in arrivals} >= {0, 1, 2}


def test_every_persona_has_a_sound_in_its_language() -> None:
    sounds = persona_sounds()
    assert set(sounds) == {"en", "cmn"}
    assert {p.complaint for p in personas()} == {"none", "explicit", "implicit"}
    for persona in personas():
        assert (
            persona.sound.removeprefix("cti/")
            in sounds["en" if persona.language == "en" else "cmn"]
        )


def test_a_broken_personas_file_says_what_is_wrong() -> None:
    with pytest.raises(PersonaError) as info:
        parse_personas("personas: [{name: x, language: fr, complaint: none, says: hi}]")
    assert "personas.yaml" in str(info.value)
    assert "personas.0.language" in str(info.value)


def test_a_known_customer_presses_one_menu_key_and_speaks_their_language() -> None:
    rng = random.Random(3)
    plans = [plan_call(ARRIVAL, VIP, rng) for _ in range(200)]
    known = [p for p in plans if p.known]
    assert len(known) > 150
    assert {p.dtmf for p in known} <= {"1", "2", "0"}
    assert all(p.number == VIP.number and p.persona.language == "zh" for p in known)


def test_a_stranger_chooses_a_language_then_gives_an_account_or_hash() -> None:
    rng = random.Random(5)
    strangers = [p for p in (plan_call(ARRIVAL, VIP, rng) for _ in range(300)) if not p.known]
    assert strangers
    for plan in strangers:
        assert plan.dtmf.startswith("2wwww123456789#")  # Chinese, then the account
        assert plan.number != VIP.number
        assert plan.patience > ARRIVAL.patience
    nobody = plan_call(ARRIVAL, None, rng)
    assert "wwww#wwww" in nobody.dtmf
    assert nobody.tier == "unknown"


def test_a_customer_says_their_menu_choice_just_before_keying_it() -> None:
    """In the demo the customer's voice says the choice (in words the menu's speech knows) as
    the menu key goes: after the language and account keys, before the menu key."""
    rng = random.Random(9)
    plans = [plan_call(ARRIVAL, VIP, rng) for _ in range(300)]
    for plan in plans:
        keys, said = spoken(plan)
        assert keys.replace("!", "") == plan.dtmf
        assert keys.endswith(f"!{plan.dtmf[-1]}")
        assert said == f"cti/sim-say-{plan.persona.language}-{plan.intent}"
    assert {plan.known for plan in plans} == {True, False}
    for language, choices in SPOKEN_CHOICES.items():
        assert set(choices) == {intent for _, intent, _ in MENU_KEYS}
        voice = persona_sounds()["en" if language == "en" else "cmn"]
        for intent, words in choices.items():
            assert voice[f"sim-say-{language}-{intent}"] == words


def test_replayed_priority_callers_come_from_the_top_tiers() -> None:
    callers = [VIP, Caller("+8613800000001", "Li", "standard", None, None)]
    rng = random.Random(1)
    chosen = {choose_caller(callers, rng, klass=2, strangers=0).tier for _ in range(50)}  # type: ignore[union-attr]
    assert chosen == {"platinum"}


def test_unhappy_customers_rate_low_and_call_again_about_the_same_thing() -> None:
    for persona in personas():
        unhappy = persona.complaint != "none"
        assert persona.calls_back == unhappy
        assert persona.survey is not None
        assert (persona.survey <= 2) == unhappy
    rng = random.Random(9)
    plans = [plan_call(ARRIVAL, VIP, rng) for _ in range(300)]
    calling_back = [p for p in plans if p.persona.calls_back and p.tier != "unknown"]
    assert calling_back
    for plan in calling_back:
        again = call_again(plan)
        assert again is not None
        assert (again.number, again.dtmf, again.intent, again.persona) == (
            plan.number,
            plan.dtmf,
            plan.intent,
            plan.persona,
        )
        assert call_again(again) is None, "they call again once"
    happy = next(p for p in plans if not p.persona.calls_back)
    assert call_again(happy) is None


def test_a_stranger_the_crm_cannot_recognise_does_not_call_again() -> None:
    rng = random.Random(4)
    strangers = [plan_call(ARRIVAL, None, rng) for _ in range(100)]
    assert any(p.persona.calls_back for p in strangers)
    assert all(call_again(p) is None for p in strangers)


def test_a_negative_call_back_delay_is_refused_before_any_call() -> None:
    result = CliRunner().invoke(main, ["simulate", "--max-calls", "1", "--call-back-after", "-5"])
    assert result.exit_code == 2
    assert "--call-back-after" in result.output
