"""The pop's "Why you" reads as sentences, from decisions the real decision core makes."""

from __future__ import annotations

import json

from agent_ui.routing_words import decision_words, no_answer_words
from cti_server.routing.core import decide
from cti_server.routing.model import Agent, WaitingCall
from cti_server.routing.policy import builtin_policy

POLICY = builtin_policy()
NOW = 1000.0


def _words(calls: list[WaitingCall], agents: list[Agent]) -> dict[str, str]:
    decision = decide(calls, agents, POLICY, NOW)[0].explanation
    words = decision_words(json.loads(json.dumps(decision)))  # as stored and published
    assert not any("{" in text for text in words.values())  # no raw record left
    return words


def test_the_longest_free_agent_is_told_who_else_could_have_taken_it() -> None:
    agents = [
        Agent("1001", {"billing": 5}, idle_since=NOW - 30),
        Agent("1002", {"billing": 5}, idle_since=NOW - 200),
    ]
    call = WaitingCall("c1", NOW - 75, tier="gold", skills=frozenset({"billing"}))
    words = _words([call], agents)
    assert words["decided by"] == "of the qualified agents free, you had waited longest for a call"
    assert words["the call"] == "gold customer, waited 1 min 15 s"
    assert words["also qualified"] == "1001 (free 30 s)"
    assert words["why not them"] == "free for less time than you"


def test_the_agent_who_served_the_customer_before_is_told_so() -> None:
    agents = [Agent("1001", idle_since=NOW - 500), Agent("1002", idle_since=NOW - 5)]
    call = WaitingCall("c1", NOW - 3, preferred_agent="1002")
    words = _words([call], agents)
    assert words["decided by"] == "you served this customer before"
    assert "also qualified" not in words  # chosen, not compared: nobody is named beside them


def test_the_only_qualified_agent_hears_there_was_nobody_else() -> None:
    agents = [Agent("1001", {"billing": 5}, idle_since=NOW - 30), Agent("1002", idle_since=0)]
    call = WaitingCall("c1", NOW - 5, skills=frozenset({"billing"}))
    words = _words([call], agents)
    assert words["decided by"] == "you were the only qualified agent free"
    assert words["also qualified"] == "nobody else"


def test_a_call_that_went_before_an_older_one_says_why() -> None:
    agents = [Agent("1001", idle_since=NOW - 30)]
    older = WaitingCall("old", NOW - 20, tier="standard")
    vip = WaitingCall("vip", NOW - 5, tier="platinum")
    words = _words([older, vip], agents)
    assert words["went ahead of an older call"] == "because of the customer's tier"


def test_an_unknown_rule_of_a_newer_router_is_shown_as_it_is() -> None:
    words = decision_words({"version": 9, "rule": "moon phase", "agent": "1001"})
    assert words["decided by"] == "moon phase"


def test_ring_outs_are_listed_before_the_agent_who_got_the_call() -> None:
    words = no_answer_words([{"agent": "1002", "rang_s": 15.2, "reason": "ring-no-answer"}])
    assert words == {"rang out first at": "1002 after 15 s (paused: not answering)"}
    assert no_answer_words([]) == {}
