"""The routing decision core: who gets which call, and the reason it gives (issue 6).

Every test passes an explicit ``now``: the core never reads a clock.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from cti_server.events import AgentState
from cti_server.routing import (
    Agent,
    PolicyError,
    PolicyReloader,
    WaitingCall,
    builtin_policy,
    decide,
    load_policy,
    parse_policy,
    ring_no_answer,
)
from cti_server.routing.reference import decide_by_full_scan

POLICY_YAML = """
name: test
priority:
  tiers:
    vip: {head_start: 90}
    standard: {head_start: 0}
  default_tier: standard
  aging: 1.0
eligibility:
  - {after: 0, min_level: 5, groups: [agents]}
  - {after: 30, min_level: 3, groups: [agents]}
  - {after: 60, min_level: 0, groups: [agents]}
  - {after: 120, min_level: 0, groups: [agents, overflow]}
preferred_agent: {window: 20}
ring_no_answer: {timeout: 15, reason: no answer}
"""
POLICY = parse_policy(POLICY_YAML, "test.yaml")
NOW = 10_000.0


def agent(agent_id: str, idle_s: float = 60.0, **kwargs: object) -> Agent:
    fields: dict[str, object] = {
        "skills": {"billing": 7},
        "languages": frozenset({"zh"}),
        "idle_since": NOW - idle_s,
    }
    fields.update(kwargs)
    return Agent(agent_id, **fields)  # type: ignore[arg-type]


def call(call_id: str, waited: float, **kwargs: object) -> WaitingCall:
    fields: dict[str, object] = {"skills": frozenset({"billing"}), "language": "zh"}
    fields.update(kwargs)
    return WaitingCall(call_id, queued_at=NOW - waited, **fields)  # type: ignore[arg-type]


def pairs(calls: list[WaitingCall], agents: list[Agent], now: float = NOW) -> list[tuple[str, str]]:
    return [(a.call_id, a.agent_id) for a in decide(calls, agents, POLICY, now)]


def test_a_vip_is_served_before_a_standard_caller_who_came_first() -> None:
    calls = [call("standard", waited=40), call("vip", waited=10, tier="vip")]

    [made] = decide(calls, [agent("a1")], POLICY, NOW)

    assert (made.call_id, made.agent_id) == ("vip", "a1")
    assert made.explanation["rules"][0] == "tier head start"
    assert made.explanation["overtook"] == "standard"
    assert made.explanation["priority"]["effective"] == 100.0  # 90 head start + 10 s waited


@pytest.mark.parametrize(("margin", "first"), [(-1.0, "vip"), (1.0, "standard")])
def test_a_standard_caller_who_waited_long_enough_overtakes_a_fresh_vip(
    margin: float, first: str
) -> None:
    bound = POLICY.overtake_bound("standard", "vip")
    assert bound == 90.0  # (vip head start - standard head start) / aging
    calls = [call("standard", waited=bound + margin), call("vip", waited=0, tier="vip")]

    assert pairs(calls, [agent("a1")]) == [(first, "a1")]


def test_no_later_arrival_overtakes_a_caller_past_the_starvation_bound() -> None:
    bound = POLICY.starvation_bound("standard")
    waiting = call("old", waited=bound + 0.5)
    newcomers = [call(f"vip{n}", waited=n / 10, tier="vip", value_score=1.0) for n in range(5)]

    assert pairs([*newcomers, waiting], [agent("a1")]) == [("old", "a1")]


@pytest.mark.parametrize(
    ("waited", "present", "chosen", "rule"),
    [
        (29, ["expert", "novice3", "linguist", "overflow"], "expert", "only qualified agent"),
        (29, ["novice3", "linguist", "overflow"], None, None),
        (
            31,
            ["novice3", "linguist", "overflow"],
            "novice3",
            "skill relaxed after 30 s to level>=3",
        ),
        (59, ["linguist", "overflow"], None, None),
        (
            61,
            ["linguist", "overflow"],
            "linguist",
            "skill relaxed after 60 s to any agent with the language",
        ),
        (119, ["overflow", "foreigner"], None, None),
        (121, ["overflow", "foreigner"], "overflow", "overflow group after 120 s"),
        (500, ["foreigner"], None, None),  # the language is never relaxed
    ],
)
def test_skill_requirements_relax_as_the_call_waits(
    waited: float, present: list[str], chosen: str | None, rule: str | None
) -> None:
    staff = {
        "expert": agent("expert", idle_s=1, skills={"billing": 7}),
        "novice3": agent("novice3", idle_s=2, skills={"billing": 3}),
        "linguist": agent("linguist", idle_s=3, skills={"sales": 9}),
        "overflow": agent("overflow", idle_s=4, skills={}, group="overflow"),
        "foreigner": agent("foreigner", idle_s=5, languages=frozenset({"en"})),
    }

    made = decide([call("c", waited=waited)], [staff[name] for name in present], POLICY, NOW)

    assert [a.agent_id for a in made] == ([chosen] if chosen else [])
    if made:
        assert made[0].rule == rule


def test_the_stage_in_force_is_named_only_when_the_winner_needed_it() -> None:
    expert = agent("expert", idle_s=100)
    [made] = decide([call("c", waited=121)], [expert], POLICY, NOW)

    assert made.explanation["stage"]["label"] == "overflow group after 120 s"
    assert made.explanation["rules"] == ["skill level>=5", "only qualified agent"]


def test_the_preferred_agent_wins_inside_the_window_and_not_after() -> None:
    staff = [agent("longest-idle", idle_s=300), agent("friend", idle_s=5)]

    inside = decide([call("c", waited=10, preferred_agent="friend")], staff, POLICY, NOW)
    after = decide([call("c", waited=25, preferred_agent="friend")], staff, POLICY, NOW)

    assert [(a.agent_id, a.rule) for a in inside] == [("friend", "preferred agent within window")]
    assert [(a.agent_id, a.rule) for a in after] == [("longest-idle", "tie-break longest idle")]


def test_inside_the_window_the_call_waits_for_its_busy_preferred_agent() -> None:
    friend = agent("friend", state=AgentState.ON_CALL)
    other = agent("other")

    assert pairs([call("c", waited=10, preferred_agent="friend")], [friend, other]) == []
    assert pairs([call("c", waited=21, preferred_agent="friend")], [friend, other]) == [
        ("c", "other")
    ]


def test_a_paused_preferred_agent_is_not_waited_for() -> None:
    friend = agent("friend", state=AgentState.PAUSED)

    assert pairs([call("c", waited=1, preferred_agent="friend")], [friend, agent("b")]) == [
        ("c", "b")
    ]


def test_ties_go_to_the_longest_idle_then_the_lowest_occupancy() -> None:
    busy_long = agent("a", idle_s=50, occupancy=0.9)
    fresh = agent("b", idle_s=10, occupancy=0.1)
    [by_idle] = decide([call("c", waited=5)], [fresh, busy_long], POLICY, NOW)

    same_idle_busy = agent("a", idle_s=50, occupancy=0.9)
    same_idle_calm = agent("b", idle_s=50, occupancy=0.2)
    [by_occupancy] = decide([call("c", waited=5)], [same_idle_busy, same_idle_calm], POLICY, NOW)

    assert (by_idle.agent_id, by_idle.rule) == ("a", "tie-break longest idle")
    assert (by_occupancy.agent_id, by_occupancy.rule) == ("b", "tie-break lowest occupancy")
    assert [c["agent"] for c in by_occupancy.explanation["candidates"]] == ["b", "a"]


def test_only_available_agents_are_assigned_and_each_gets_one_call() -> None:
    staff = [
        agent("free"),
        agent("talking", state=AgentState.ON_CALL),
        agent("paused", state=AgentState.PAUSED),
        agent("out", state=AgentState.LOGGED_OUT),
    ]

    assert pairs([call("c1", waited=9), call("c2", waited=8)], staff) == [("c1", "free")]


def test_a_call_that_rings_out_pauses_the_agent_and_goes_to_someone_else() -> None:
    waiting = call("c", waited=40)
    later = call("later", waited=5)
    [offer] = decide([waiting], [agent("slow", idle_s=99), agent("b", idle_s=1)], POLICY, NOW)
    assert offer.agent_id == "slow"

    with pytest.raises(ValueError, match="timeout is 15 s"):
        ring_no_answer(waiting, offer, POLICY, NOW + 14)
    result = ring_no_answer(waiting, offer, POLICY, NOW + 15)

    assert (result.agent.agent_id, result.agent.state, result.agent.reason) == (
        "slow",
        AgentState.PAUSED,
        "no answer",
    )
    assert result.call.queued_at == waiting.queued_at  # keeps its place in the queue
    back_again = [agent("slow", idle_s=200), agent("b", idle_s=1)]  # even if slow is free again
    assert pairs([later, result.call], back_again, NOW + 15) == [("c", "b"), ("later", "slow")]
    json.dumps(result.explanation)


def test_a_supervisor_moves_a_call_to_an_agent_whatever_the_rules() -> None:
    urgent = call("urgent", waited=100, tier="vip")
    moved = call("moved", waited=1, move_to_agent="novice", skills=frozenset({"mortgage"}))
    staff = [agent("expert", idle_s=500), agent("novice", idle_s=1, skills={"billing": 1})]

    made = decide([urgent, moved], staff, POLICY, NOW)

    assert [(a.call_id, a.agent_id, a.rule) for a in made] == [
        ("moved", "novice", "supervisor move to agent"),
        ("urgent", "expert", "only qualified agent"),
    ]


def test_a_call_moved_to_a_busy_agent_waits_for_them() -> None:
    moved = call("moved", waited=300, move_to_agent="busy")
    staff = [agent("busy", state=AgentState.ON_CALL), agent("free")]

    assert pairs([moved, call("other", waited=1)], staff) == [("other", "free")]


def test_a_supervisor_priority_change_puts_a_call_first() -> None:
    raised = call("raised", waited=5, priority_adjust=200)
    vip = call("vip", waited=60, tier="vip")

    [made] = decide([vip, raised], [agent("a1")], POLICY, NOW)

    assert made.call_id == "raised"
    assert made.explanation["rules"][0] == "supervisor priority change"
    assert made.explanation["priority"]["adjust"] == 200


def test_the_explanation_is_json_beside_what_the_ivr_stores() -> None:
    [made] = decide([call("c", waited=45, tier="gold")], [agent("a", idle_s=3)], POLICY, NOW)
    routing = {"ivr_flow": "main", "ivr_outcome": "queue", "attributes": {"intent": "billing"}}

    stored = json.loads(json.dumps({**routing, "decision": made.explanation}))

    assert stored["decision"] == {
        "version": 1,
        "policy": "test",
        "at": NOW,
        "call": "c",
        "agent": "a",
        "rule": "only qualified agent",
        "rules": ["skill level>=5", "only qualified agent"],
        "priority": {
            "effective": 45.0,
            "waited_s": 45.0,
            "tier": "standard",  # gold is unknown to this policy: the default tier
            "head_start": 0.0,
            "value": 0.0,
            "callback": 0.0,
            "adjust": 0.0,
        },
        "overtook": None,
        "stage": {"index": 1, "label": "skill relaxed after 30 s to level>=3"},
        "candidates": [
            {"agent": "a", "idle_s": 3.0, "occupancy": 0.0, "level": 7, "group": "agents"}
        ],
        "more_candidates": False,
    }


def _random_centre(rng: random.Random) -> tuple[list[WaitingCall], list[Agent]]:
    skills, languages = ["billing", "sales", "tech", "loans"], ["zh", "en", "yue"]
    states = [AgentState.AVAILABLE] * 3 + [AgentState.ON_CALL, AgentState.PAUSED]
    agents = [
        Agent(
            f"a{n}",
            skills={s: rng.randint(1, 10) for s in rng.sample(skills, rng.randint(0, 3))},
            languages=frozenset(rng.sample(languages, rng.randint(1, 2))),
            state=rng.choice(states),
            idle_since=NOW - rng.choice([0, 10, 60, 60, 300]),
            occupancy=rng.choice([0.0, 0.5, 0.5, 1.0]),
            group=rng.choice(["agents", "agents", "overflow"]),
        )
        for n in range(rng.randint(0, 25))
    ]
    ids = [a.id for a in agents] + ["gone"]
    calls = [
        WaitingCall(
            f"c{n}",
            queued_at=NOW - rng.choice([0, 5, 25, 31, 61, 90, 121, 400]),
            tier=rng.choice(["vip", "standard", "unknown"]),
            value_score=rng.random(),
            skills=frozenset(rng.sample(skills, rng.randint(0, 2))),
            language=rng.choice([None, *languages]),
            preferred_agent=rng.choice(ids) if rng.random() < 0.4 else None,
            callback=rng.random() < 0.2,
            priority_adjust=rng.choice([0, 0, 0, 50, -50]),
            move_to_agent=rng.choice(ids) if rng.random() < 0.1 else None,
            excluded_agents=frozenset(rng.sample(ids, min(len(ids), rng.randint(0, 2)))),
        )
        for n in range(rng.randint(0, 25))
    ]
    return calls, agents


def test_the_fast_core_decides_exactly_as_the_full_scan() -> None:
    rng = random.Random(6)
    terse = parse_policy(POLICY_YAML + "explain_candidates: 1\n", "terse.yaml")
    for _ in range(400):
        calls, agents = _random_centre(rng)
        for chosen in (POLICY, terse, builtin_policy("default")):
            assert decide(calls, agents, chosen, NOW) == decide_by_full_scan(
                calls, agents, chosen, NOW
            )


VALID = """name: small
priority:
  tiers: {standard: {}}
eligibility:
  - {after: 0, min_level: 1}
"""


@pytest.mark.parametrize(
    ("before", "after", "named"),
    [
        (
            "tiers: {standard: {}}",
            "tiers: {standard: {head_start: soon}}",
            "tiers.standard.head_start",
        ),
        ("name: small", "name: small\npriorty: {}", "priorty: Extra inputs are not permitted"),
        ("tiers: {standard: {}}", "tiers: {vip: {}}", "default_tier 'standard' is not one of"),
        ("{after: 0, min_level: 1}", "{after: 10, min_level: 1}", "first stage must start after 0"),
        ("{after: 0, min_level: 1}", "{after: 0, min_level: 11}", "eligibility.0.min_level"),
        ("name: small", "name: small\nring_no_answer: {timeout: 0}", "ring_no_answer.timeout"),
    ],
)
def test_an_invalid_policy_file_names_the_key(
    tmp_path: Path, before: str, after: str, named: str
) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(VALID.replace(before, after), encoding="utf-8")

    with pytest.raises(PolicyError) as error:
        load_policy(path)

    assert str(error.value).startswith("routing.yaml: ")
    assert named in str(error.value)


def test_the_small_policy_the_invalid_ones_are_made_from_is_valid() -> None:
    assert parse_policy(VALID, "valid.yaml").name == "small"


def test_a_policy_that_is_not_a_mapping_is_refused() -> None:
    with pytest.raises(PolicyError, match=r"x.yaml: a policy is a mapping of keys, got list"):
        parse_policy("- 1\n- 2\n", "x.yaml")


def _write(path: Path, text: str, stamp: int) -> None:
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(stamp, stamp))  # an explicit mtime: no sleeping for the clock to move


def test_the_reloader_applies_a_change_and_keeps_the_old_policy_on_a_broken_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "routing.yaml"
    _write(path, POLICY_YAML, 1_000_000_000)
    reloader = PolicyReloader(path)
    assert reloader.current().priority.tiers["vip"].head_start == 90

    _write(path, POLICY_YAML.replace("head_start: 90", "head_start: 120"), 2_000_000_000)
    assert reloader.current().priority.tiers["vip"].head_start == 120

    _write(path, POLICY_YAML.replace("head_start: 90", "head_start: -5"), 3_000_000_000)
    assert reloader.current().priority.tiers["vip"].head_start == 120
    assert reloader.error is not None
    assert "priority.tiers.vip.head_start" in reloader.error
    assert "routing policy change refused" in caplog.text

    path.unlink()
    assert reloader.current().priority.tiers["vip"].head_start == 120

    _write(path, POLICY_YAML.replace("head_start: 90", "head_start: 60"), 4_000_000_000)
    assert reloader.current().priority.tiers["vip"].head_start == 60
    assert reloader.error is None


def test_the_shipped_policies_load_and_state_their_bounds() -> None:
    default = builtin_policy("default")
    bank = builtin_policy("bank-fifo")

    assert default.overtake_bound("standard", "gold") == 90  # as its comments say
    assert default.starvation_bound("standard") == 150
    assert bank.overtake_bound("standard", "gold") == 90  # the bank's 1.5 minutes
