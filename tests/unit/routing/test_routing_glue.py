"""The glue between the live model and the decision core (issue 6), without Asterisk.

AMI messages shaped as Asterisk 22 sends them for a routed call (seen on the real one: withdraw
from the waiting queue, the agent's own queue, a ring-out and the return) go through the real
translator and tracker (:class:`tests.support.routing_centre.Centre`); the router reads the
tracker, decides and sends its AMI actions to a fake link that records them.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from crm_core.routing import AgentProfile, CustomerFacts
from cti_server.events import AgentState, CallRangOut, CallRouted, DomainEvent, IvrFinished
from cti_server.recorder.entries import InteractionUpdate
from cti_server.recorder.recorder import interaction_update
from cti_server.routing import inputs
from cti_server.routing.http import routing_routes
from cti_server.routing.occupancy import Occupancy
from cti_server.routing.policy import builtin_policy_path
from cti_server.tracker import model as live
from tests.support.routing_centre import CALLER, NODE, T0, Centre, member


@pytest.mark.asyncio
async def test_a_call_rings_out_at_the_best_agent_who_is_paused_and_the_next_one_answers() -> None:
    centre = Centre(CustomerFacts(7, "gold", 0.0, preferred_extension=None))
    centre.sign_in("3001")
    centre.clock.advance(5)
    centre.sign_in("3002")  # 3001 has been idle longer
    centre.ami("Newchannel", Uniqueid="c1", Linkedid="c1", Channel=CALLER, CallerIDNum="+861")
    centre.router.on_event(
        IvrFinished(
            node=NODE,
            linkedid="c1",
            flow="main",
            outcome="transfer",
            queue="support",
            attributes={"skill": "billing", "language": "en", "customer_id": "7"},
            path=[],
            inputs={},
            customer_id=7,
        )
    )
    centre.caller_joins("support")
    joined = centre.clock.timestamp()

    await centre.router.route_once()

    [offer] = centre.link.actions("QueueWithdrawCaller")
    assert offer == {"Queue": "support", "Caller": CALLER, "WithdrawInfo": "3001:15"}
    [routed] = centre.of(CallRouted)
    assert (routed.extension, routed.rule) == ("3001", "tie-break longest idle")
    assert routed.decision["priority"]["tier"] == "gold"  # from the CRM, not the IVR
    assert [c["agent"] for c in routed.decision["candidates"]] == ["3001", "3002"]

    # Asterisk: the call leaves the waiting queue for 3001's own, rings 15 s, and comes back
    centre.caller_leaves("support")
    centre.caller_joins("agent-3001")
    centre.ami("AgentCalled", **member("3001"))
    await centre.router.route_once()  # while it rings: no second offer, 3001 counts as busy
    assert len(centre.link.actions("QueueWithdrawCaller")) == 1
    centre.clock.advance(15)
    centre.ami("AgentRingNoAnswer", **member("3001"), RingTime="15000")
    centre.caller_leaves("agent-3001")
    centre.caller_joins("support")

    [rang_out] = centre.of(CallRangOut)
    assert (rang_out.extension, rang_out.reason) == ("3001", "ring-no-answer")
    await centre.router.route_once()

    [pause] = centre.link.actions("QueuePause")
    assert pause == {
        "Interface": "Local/3001@cti-sim-agent/n",
        "Paused": "true",
        "Reason": "ring-no-answer",
    }
    second = centre.link.actions("QueueWithdrawCaller")[1]
    assert second["WithdrawInfo"] == "3002:15"
    again = centre.of(CallRouted)[1].decision
    assert again["priority"]["waited_s"] == centre.clock.timestamp() - joined  # the first join
    assert [n["agent"] for n in again["no_answer"]] == ["3001"]
    assert centre.router.snapshot()["decisions"][0]["agent"] == "3002"

    centre.caller_leaves("support")
    centre.caller_joins("agent-3002")
    centre.ami("AgentConnect", **member("3002"), HoldTime="16")
    await centre.router.route_once()
    assert len(centre.link.actions("QueueWithdrawCaller")) == 2
    assert centre.router.snapshot()["waiting"] == []


@pytest.mark.asyncio
async def test_a_rejoin_after_a_heartbeat_check_is_not_a_ring_out() -> None:
    centre = Centre()
    centre.sign_in("3001")
    centre.ami("Newchannel", Uniqueid="c1", Linkedid="c1", Channel=CALLER)
    centre.caller_joins("support")
    await centre.router.route_once()  # offered to 3001 (no skill asked: anyone)
    centre.caller_leaves("support")  # the check's timeout raced the withdraw: it rejoins
    centre.caller_joins("support")

    assert centre.of(CallRangOut) == []


@pytest.mark.asyncio
async def test_a_policy_edit_counts_from_the_next_decision_and_a_broken_one_is_refused(
    tmp_path: Path,
) -> None:
    policy = yaml.safe_load(builtin_policy_path().read_text(encoding="utf-8"))
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy), encoding="utf-8")
    centre = Centre(policy=path)
    centre.sign_in("3001")
    centre.ami("Newchannel", Uniqueid="c1", Linkedid="c1", Channel=CALLER)
    centre.caller_joins("support")
    policy["ring_no_answer"]["timeout"] = 7
    path.write_text(yaml.safe_dump(policy), encoding="utf-8")

    await centre.router.route_once()
    path.write_text("priority: [not, a, policy]", encoding="utf-8")
    view = centre.router.snapshot()

    [offer] = centre.link.actions("QueueWithdrawCaller")
    assert offer["WithdrawInfo"] == "3001:7"
    assert view["policy"]["name"] == "default"  # the last good policy stays in force
    assert "policy.yaml" in view["policy"]["error"]


def _agent(**fields: Any) -> live.Agent:
    agent = live.Agent(node=NODE, interface="PJSIP/3001", name="agent-3001")
    for key, value in fields.items():
        setattr(agent, key, value)
    return agent


def test_a_routed_agent_is_a_member_of_their_own_queue() -> None:
    assert inputs.routed_extension(_agent(queues={"fallback", "agent-3001"})) == "3001"
    assert inputs.routed_extension(_agent(queues={"support"})) is None
    assert inputs.routed_extension(_agent(queues={"agent-x1"})) is None


def test_an_agent_takes_skills_and_languages_from_the_crm_and_the_team_names_the_group() -> None:
    since = T0
    agent = _agent(queues={"agent-3001"}, state=AgentState.AVAILABLE, since=since)
    profile = AgentProfile("3001", {"billing": 9, "broken": 11}, frozenset({"zh"}), "overflow")

    mapped = inputs.router_agent(
        agent, "3001", profile, occupancy=0.4, groups=frozenset({"agents", "overflow"})
    )
    ringing = inputs.router_agent(agent, "3001", None, state=AgentState.RINGING)

    assert (mapped.id, dict(mapped.skills)) == ("3001", {"billing": 9})
    assert mapped.languages == frozenset({"zh"})
    assert (mapped.group, mapped.idle_since, mapped.occupancy) == ("overflow", T0.timestamp(), 0.4)
    assert (ringing.state, ringing.skills, ringing.group) == (AgentState.RINGING, {}, "agents")


def test_a_waiting_call_takes_the_ivr_needs_and_the_crm_value() -> None:
    call = live.Call(
        node=NODE,
        linkedid="c1",
        caller_uniqueid="c1",
        caller_number="+861",
        caller_name="",
        dialed="100",
        arrived_at=T0,
        queued_at=T0 + timedelta(seconds=8),
    )
    ivr = {"skill": "sales", "language": "zh", "tier": "silver", "customer_id": "7"}
    facts = CustomerFacts(7, "platinum", 0.5, preferred_extension="3002")

    known = inputs.waiting_call(call, inputs.CallContext(ivr, facts, priority_adjust=30))
    unknown = inputs.waiting_call(call, inputs.CallContext({"tier": "silver", "skill": " "}))

    assert (known.skills, known.language, known.tier) == (frozenset({"sales"}), "zh", "platinum")
    assert (known.value_score, known.preferred_agent, known.priority_adjust) == (0.5, "3002", 30)
    assert known.queued_at == (T0 + timedelta(seconds=8)).timestamp()
    assert (unknown.skills, unknown.language, unknown.tier) == (frozenset(), None, "silver")
    restarted = inputs.waiting_call(call, inputs.CallContext({}, waiting_since=T0.timestamp() - 30))
    assert restarted.queued_at == T0.timestamp() - 30  # the channel remembers the first wait
    assert inputs.customer_id(ivr) == 7
    assert inputs.customer_id({"customer_id": "x"}) is None


def test_occupancy_is_the_recent_share_of_signed_in_time_spent_busy() -> None:
    occupancy = Occupancy(half_life=3600)
    occupancy.update("a", AgentState.AVAILABLE, 0)
    occupancy.update("a", AgentState.ON_CALL, 100)
    occupancy.update("a", AgentState.AVAILABLE, 200)

    assert occupancy.of("a", 200) == pytest.approx(0.5, abs=0.02)
    assert occupancy.of("a", 400) == pytest.approx(0.25, abs=0.02)
    assert occupancy.of("nobody", 400) == 0.0


def _crm_fields(event: DomainEvent) -> dict[str, Any]:
    entry = interaction_update(event)
    assert isinstance(entry, InteractionUpdate)
    return entry.crm_fields()


def test_decisions_and_ring_outs_merge_into_the_interactions_routing() -> None:
    routed = CallRouted(
        node=NODE, linkedid="c1", extension="3001", rule="r", decision={"rule": "r"}
    )
    rang = CallRangOut(node=NODE, linkedid="c1", extension="3001", reason="x", no_answer=[{"a": 1}])

    assert _crm_fields(routed) == {
        "node": NODE,
        "linkedid": "c1",
        "routing": {"decision": {"rule": "r"}},
    }
    assert _crm_fields(rang) == {
        "node": NODE,
        "linkedid": "c1",
        "routing": {"no_answer": [{"a": 1}]},
    }


async def _allow(_request: web.Request, _role: str) -> web.Response | None:
    return None


async def _refuse(_request: web.Request, _role: str) -> web.Response | None:
    return web.json_response({"error": "forbidden"}, status=403)


@pytest.mark.asyncio
async def test_supervisor_controls_refuse_wrong_payloads_clearly() -> None:
    centre = Centre()
    centre.sign_in("3001")
    centre.ami("Newchannel", Uniqueid="c1", Linkedid="c1", Channel=CALLER)
    centre.ami("QueueMemberPause", **member("3001"), Paused="1", PausedReason="lunch")
    centre.caller_joins("support")
    await centre.router.route_once()
    app = web.Application()
    app.router.add_routes(routing_routes(centre.router, _allow))
    denied = web.Application()
    denied.router.add_routes(routing_routes(centre.router, _refuse))
    base = f"/routing/calls/{NODE}/c1"
    async with TestClient(TestServer(app)) as http, TestClient(TestServer(denied)) as other:
        not_json = await http.post(f"{base}/move", data=b"agent=3001")
        bad_agent = await http.post(f"{base}/move", json={"agent": "3001;x"})
        extra = await http.post(f"{base}/priority", json={"adjust": 5, "why": "vip"})
        too_big = await http.post(f"{base}/priority", json={"adjust": 1e9})
        no_call = await http.post(f"/routing/calls/{NODE}/nope/priority", json={"adjust": 5})
        no_agent = await http.post(f"{base}/move", json={"agent": "3999"})
        moved = await http.post(f"{base}/move", json={"agent": "3001"})
        raised = await http.post(f"{base}/priority", json={"adjust": 60})
        overview = await http.get("/routing")
        forbidden = await other.get("/routing")

        assert (not_json.status, bad_agent.status, extra.status) == (400, 422, 422)
        assert (await bad_agent.json())["fields"][0]["field"] == "agent"
        assert (too_big.status, no_call.status, no_agent.status) == (422, 404, 409)
        assert (moved.status, raised.status, forbidden.status) == (200, 200, 403)
        body = json.loads(await overview.text())
        [waiting] = body["waiting"]
        assert (waiting["moved_to"], waiting["priority"]["adjust"]) == ("3001", 60.0)
        assert body["policy"]["name"] == "default"
