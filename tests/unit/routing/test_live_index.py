"""The live router's index (issue 19): kept between decisions and told of each event, it gives
the same assignments as the full scan and the pure core after every event.

Hypothesis drives random event sequences (calls arrive, leave, are moved, re-prioritised or
ring out; agents change state, skills, languages or group, sign in and out; time passes and
rules relax; the policy is reloaded; decisions are carried out) and checks after each one.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from cti_server.events import AgentState
from cti_server.routing import Agent, Policy, WaitingCall, builtin_policy, decide, parse_policy
from cti_server.routing.free_agents import FreeAgents
from cti_server.routing.live_index import LiveIndex
from cti_server.routing.reference import decide_by_full_scan

START = 1_765_000_000.0  # a wall-clock time: its floats round as the live router's do
AGENTS = [f"a{n}" for n in range(8)]
CALLS = [f"c{n}" for n in range(10)]
SKILLS = ["billing", "sales", "tech"]
LANGUAGES = ["zh", "en", "yue"]
STATES = [AgentState.AVAILABLE] * 3 + [
    AgentState.ON_CALL,
    AgentState.WRAP_UP,
    AgentState.RINGING,
    AgentState.PAUSED,
    AgentState.LOGGED_OUT,
]
TEST_POLICY = parse_policy(
    """
name: test
priority:
  tiers: {vip: {head_start: 90}, standard: {}}
  aging: 1.5
  value_weight: 7.3
  callback_head_start: -20
eligibility:
  - {after: 0, min_level: 5}
  - {after: 30, min_level: 3}
  - {after: 60, min_level: 0}
  - {after: 120, min_level: 0, groups: [agents, overflow]}
preferred_agent: {window: 20}
explain_candidates: 1
""",
    "test.yaml",
)
POLICIES = [TEST_POLICY, builtin_policy("default"), builtin_policy("bank-fifo")]

levels = st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 10), max_size=3)
languages = st.frozensets(st.sampled_from(LANGUAGES), max_size=2)
waits = st.sampled_from([0.0, 5.0, 19.9, 20.0, 30.0, 59.5, 60.0, 121.0, 400.0]) | st.floats(0, 500)
values = st.sampled_from([0.0, 0.1, 0.3, 1.0]) | st.floats(-0.5, 1.5)
adjusts = st.sampled_from([0.0, 0.0, 45.0, -45.0]) | st.floats(-200, 200)


class LiveIndexMachine(RuleBasedStateMachine):
    """The index beside plain lists of the same calls and agents, decided by the full scan."""

    def __init__(self) -> None:
        super().__init__()
        self.now = START
        self.policy: Policy = TEST_POLICY
        self.calls: dict[str, WaitingCall] = {}
        self.agents: dict[str, Agent] = {}
        self.index = LiveIndex(self.policy)

    @rule(
        name=st.sampled_from(CALLS),
        waited=waits,
        tier=st.sampled_from(["vip", "standard", "gold", "unknown"]),
        value=values,
        skills=st.frozensets(st.sampled_from(SKILLS), max_size=2),
        language=st.none() | st.sampled_from(LANGUAGES),
        preferred=st.none() | st.sampled_from([*AGENTS, "gone"]),
        callback=st.booleans(),
    )
    def call_arrives(
        self,
        name: str,
        waited: float,
        tier: str,
        value: float,
        skills: frozenset[str],
        language: str | None,
        preferred: str | None,
        callback: bool,
    ) -> None:
        call = WaitingCall(
            name,
            queued_at=self.now - waited,
            tier=tier,
            value_score=value,
            skills=skills,
            language=language,
            preferred_agent=preferred,
            callback=callback,
        )
        self.calls[name] = call
        self.index.put_call(call)

    @precondition(lambda self: self.calls)
    @rule(data=st.data())
    def call_leaves(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(self.calls)))
        del self.calls[name]
        self.index.drop_call(name)

    @precondition(lambda self: self.calls)
    @rule(
        data=st.data(),
        adjust=adjusts,
        moved_to=st.none() | st.sampled_from([*AGENTS, "gone"]),
        rang_out=st.none() | st.sampled_from(AGENTS),
    )
    def supervisor_or_ring_out_changes_a_call(
        self, data: st.DataObject, adjust: float, moved_to: str | None, rang_out: str | None
    ) -> None:
        call = self.calls[data.draw(st.sampled_from(sorted(self.calls)))]
        excluded = call.excluded_agents | ({rang_out} if rang_out else set())
        call = replace(
            call, priority_adjust=adjust, move_to_agent=moved_to, excluded_agents=excluded
        )
        self.calls[call.id] = call
        self.index.put_call(call)

    @rule(
        name=st.sampled_from(AGENTS),
        skills=levels,
        speaks=languages,
        state=st.sampled_from(STATES),
        idle=st.sampled_from([0.0, 10.0, 60.0, 60.0]) | st.floats(0, 600),
        occupancy=st.sampled_from([0.0, 0.5, 0.5, 1.0]),
        group=st.sampled_from(["agents", "agents", "overflow", "other"]),
    )
    def agent_signs_in_or_changes(
        self,
        name: str,
        skills: dict[str, int],
        speaks: frozenset[str],
        state: AgentState,
        idle: float,
        occupancy: float,
        group: str,
    ) -> None:
        agent = Agent(
            name,
            skills=skills,
            languages=speaks,
            state=state,
            idle_since=self.now - idle,
            occupancy=occupancy,
            group=group,
        )
        self.agents[name] = agent
        self.index.put_agent(agent)

    @precondition(lambda self: self.agents)
    @rule(data=st.data(), state=st.sampled_from(STATES))
    def agent_state_changes(self, data: st.DataObject, state: AgentState) -> None:
        agent = self.agents[data.draw(st.sampled_from(sorted(self.agents)))]
        agent = replace(agent, state=state, idle_since=self.now)
        self.agents[agent.id] = agent
        self.index.put_agent(agent)

    @precondition(lambda self: self.agents)
    @rule(data=st.data())
    def agent_signs_out(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(self.agents)))
        del self.agents[name]
        self.index.drop_agent(name)

    @rule(seconds=st.sampled_from([0.5, 10.0, 20.0, 30.0, 61.0]) | st.floats(0, 200))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds

    @rule(policy=st.sampled_from(POLICIES))
    def policy_reloads(self, policy: Policy) -> None:
        self.policy = policy
        self.index.set_policy(policy)

    @rule()
    def decisions_are_carried_out(self) -> None:
        """The calls given leave the queue and their agents ring, as the live router does."""
        for made in self.index.decide(self.now):
            del self.calls[made.call_id]
            self.index.drop_call(made.call_id)
            agent = replace(self.agents[made.agent_id], state=AgentState.RINGING)
            self.agents[agent.id] = agent
            self.index.put_agent(agent)

    @invariant()
    def decides_as_the_full_scan_and_the_core(self) -> None:
        calls, agents = list(self.calls.values()), list(self.agents.values())
        made = self.index.decide(self.now)
        assert made == decide_by_full_scan(calls, agents, self.policy, self.now)
        assert made == decide(calls, agents, self.policy, self.now)


LiveIndexMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,  # a shared machine's load is not a failure
    suppress_health_check=[HealthCheck.too_slow],
)
test_the_live_index_decides_as_the_full_scan_after_every_event = LiveIndexMachine.TestCase


def test_a_freed_agent_takes_the_best_call_they_can_and_is_told_why() -> None:
    index = LiveIndex(TEST_POLICY)
    for call in (
        WaitingCall("old-en", queued_at=START - 100, skills=frozenset({"tech"}), language="en"),
        WaitingCall("vip-zh", queued_at=START - 10, tier="vip", language="zh"),
        WaitingCall("zh", queued_at=START - 50, language="zh"),
    ):
        index.put_call(call)
    index.put_agent(Agent("a1", languages=frozenset({"zh"}), state=AgentState.ON_CALL))
    assert index.decide(START) == []

    index.put_agent(Agent("a1", languages=frozenset({"zh"}), idle_since=START))

    [made] = index.decide(START)
    assert (made.call_id, made.agent_id) == ("vip-zh", "a1")  # 90 + 15 beats 75 waited
    assert made.explanation["overtook"] == "zh"  # the English caller is not hers to take


def test_priorities_equal_but_for_rounding_keep_the_full_scans_order() -> None:
    """+0.1 from a supervisor against 0.1 s more waiting: equal on paper, not in floats, where
    the kept rank (aging * queued_at - bonus) rounds them the other way round."""
    policy, now = builtin_policy("default"), 1_765_000_000.7
    calls = [
        WaitingCall("adjusted", queued_at=1_764_999_939.8, value_score=0.2, priority_adjust=0.1),
        WaitingCall("earlier", queued_at=1_764_999_939.7, value_score=0.2),
    ]
    agents = [Agent("a1")]
    index = LiveIndex(policy)
    index.sync(calls, agents, policy)

    [made] = index.decide(now)

    assert made.call_id == "adjusted"
    assert [made] == decide_by_full_scan(calls, agents, policy, now)


def test_ranks_that_rounding_puts_the_wrong_way_round_are_read_ahead() -> None:
    """Aging 1.5: the kept ranks differ by a rounding step one way, the priorities by less the
    other way; the index reads past the first rank and serves them in the full scan's order."""
    now = START + 0.7
    calls = [
        WaitingCall("kept-first", queued_at=1_764_999_939.1),
        WaitingCall("ranked-first", queued_at=1_764_999_937.8999999, priority_adjust=-1.8),
    ]
    agents = [Agent("a1")]
    index = LiveIndex(TEST_POLICY)
    index.sync(calls, agents, TEST_POLICY)

    [made] = index.decide(now)

    assert made.call_id == "ranked-first"
    assert [made] == decide_by_full_scan(calls, agents, TEST_POLICY, now)


def test_a_call_that_ages_into_a_relaxed_stage_needs_no_event() -> None:
    index = LiveIndex(TEST_POLICY)
    index.put_agent(Agent("novice", skills={"billing": 3}, languages=frozenset({"zh"})))
    index.put_call(WaitingCall("c1", queued_at=START, skills=frozenset({"billing"}), language="zh"))
    assert index.decide(START + 29) == []  # level 5 wanted

    [made] = index.decide(START + 30)

    assert made.agent_id == "novice"
    assert made.rule == "skill relaxed after 30 s to level>=3"


def test_an_old_call_is_taken_when_newer_ones_of_its_kind_are_not_yet() -> None:
    """The novice may take billing calls only once skills are waived (60 s): the one that has
    waited 70 s goes to them, past ten newer billing calls ranked above it by their tier."""
    index = LiveIndex(TEST_POLICY)
    index.put_agent(Agent("novice", languages=frozenset({"zh"})))
    billing = frozenset({"billing"})
    for n in range(1, 11):  # 90 + 1.5 * (10 + n) virtual seconds: ahead of 1.5 * 70
        vip = WaitingCall(f"vip{n}", START - 10 - n, tier="vip", skills=billing, language="zh")
        index.put_call(vip)
    index.put_call(WaitingCall("old", queued_at=START - 70, skills=billing, language="zh"))

    [made] = index.decide(START)

    assert (made.call_id, made.agent_id) == ("old", "novice")
    assert made.explanation["rule"] == "skill relaxed after 60 s to any agent with the language"


def test_a_call_goes_to_its_preferred_agent_who_lacks_its_skill() -> None:
    index = LiveIndex(TEST_POLICY)
    index.put_agent(Agent("known", languages=frozenset({"zh"})))
    index.put_call(
        WaitingCall(
            "c1",
            queued_at=START,
            skills=frozenset({"tech"}),
            language="zh",
            preferred_agent="known",
        )
    )

    [made] = index.decide(START + 5)

    assert (made.agent_id, made.rule) == ("known", "preferred agent within window")


def test_a_moved_call_waits_for_its_agent() -> None:
    index = LiveIndex(TEST_POLICY)
    index.put_agent(Agent("a1", languages=frozenset({"zh"})))
    index.put_agent(Agent("a2", languages=frozenset({"zh"}), state=AgentState.ON_CALL))
    index.put_call(WaitingCall("c1", queued_at=START, language="zh", move_to_agent="a2"))
    assert index.decide(START + 100) == []

    index.put_agent(Agent("a2", languages=frozenset({"zh"})))

    [made] = index.decide(START + 100)
    assert (made.call_id, made.agent_id, made.rule) == ("c1", "a2", "supervisor move to agent")


def test_an_agent_who_is_not_free_cannot_be_indexed_as_free() -> None:
    with pytest.raises(ValueError, match="'a1' is paused, not available"):
        FreeAgents().add(Agent("a1", state=AgentState.PAUSED))
