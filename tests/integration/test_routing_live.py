"""Routing on a real Asterisk (issue 6): the router's choices carried out by app_queue.

One Asterisk for this module, its dialplan rendered with routing on: callers wait in ``support``
(no members), each simulated agent is the only member of ``agent-<extension>`` and a member of
``fallback``. The CTI server runs in this process (or as ``cti serve``, to be killed).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import yaml
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.customers import create_customer
from crm_core.interactions import record_interaction
from crm_core.models import Interaction
from crm_core.people import create_user, issue_token, set_skill
from crm_core.schemas import CustomerIn, InteractionIn
from cti_server.app import DATABASE, TRACKER
from cti_server.asterisk.local import AsteriskInstance
from cti_server.config import (
    AgentEndpointSettings,
    IvrSettings,
    RoutingSettings,
    Settings,
)
from cti_server.routing import execution
from cti_server.routing.policy import builtin_policy_path
from cti_server.sim.simulation import place_customer_call
from cti_server.telephony import agent_actions
from cti_server.telephony.ami_client import AmiClient
from tests.conftest import ami_observer
from tests.support.asterisk import AsteriskNode, node_settings, require_chroot
from tests.support.live_calls import call_through_ivr, own_crm, schema_ready, serving
from tests.support.serve import ServeProcess
from tests.support.waiting import EventLog, event_is, poll_until

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]

AGENTS = ("3001", "3002", "3003", "3004", "3005")
_AGENT_QUEUES = {f"agent-{extension}" for extension in AGENTS}
FALLBACK = "fallback"
Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture(scope="module")
def routed_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AsteriskNode]:
    """An Asterisk whose dialplan routes: a short heartbeat lease and check, for the fallback."""
    workdir = tmp_path_factory.mktemp("routed")
    name = f"r{os.getpid()}"
    base = node_settings(name, workdir)
    agents = tuple(AgentEndpointSettings(extension=e, name=f"Agent {e}") for e in AGENTS)
    settings = base.model_copy(
        update={
            "routing": RoutingSettings(
                enabled=True,
                lease_seconds=3,
                check_seconds=2,
                tick_seconds=0.5,
                skills_cache_seconds=0.5,
            ),
            "dialplan": base.dialplan.model_copy(update={"agents": agents}),
        }
    )
    instance = AsteriskInstance(require_chroot(), name, settings)
    instance.up()
    yield AsteriskNode(settings=instance.settings, instance=instance)
    instance.stop()


@pytest_asyncio.fixture(autouse=True)
async def _no_call_left(routed_node: AsteriskNode) -> AsyncIterator[None]:
    """Whatever a test leaves ringing or waiting is hung up, and gone before the next test: a
    call still there would be adopted by the next test's live model and count in its figures."""
    yield
    async with ami_observer(routed_node) as (client, _):

        async def _no_channel_left() -> bool:
            reply = await client.send_action("CoreShowChannels", timeout=10)
            messages = reply if isinstance(reply, list) else [reply]
            channels = [m for m in messages if m.get("Event") == "CoreShowChannel"]
            for message in channels:
                with contextlib.suppress(agent_actions.AgentActionError):
                    await agent_actions.hangup(client, str(message["Channel"]))
            return not channels

        await poll_until(_no_channel_left, 15, interval=0.2, what="every call hung up")


def _policy(tmp_path: Path) -> Path:
    """The packaged default policy with the relaxation pushed out of the test's reach (300 s and
    later instead of 30 s) and a 3 s ring time: every choice below is the default's rules."""
    policy = yaml.safe_load(builtin_policy_path().read_text(encoding="utf-8"))
    policy["name"] = "default-for-tests"
    for stage in policy["eligibility"]:
        stage["after"] *= 10
    policy["ring_no_answer"]["timeout"] = 3
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy), encoding="utf-8")
    return path


def _flows(tmp_path: Path) -> Path:
    """A short inbound flow: known callers are identified, press 1 (billing) or 2 (sales)."""
    flows = tmp_path / "flows"
    flows.mkdir()
    flow = {
        "name": "main",
        "languages": ["en", "zh"],
        "start": "identify",
        "steps": {
            "identify": {"type": "identify", "found": "menu", "not_found": "menu"},
            "menu": {
                "type": "menu",
                "prompt": "please_hold",
                "timeout": 10,
                "retries": 1,
                "choices": {"1": "billing", "2": "sales"},
                "on_timeout": "queue",
                "on_invalid": "queue",
            },
            "billing": {
                "type": "set",
                "attributes": {"intent": "billing", "skill": "billing"},
                "next": "queue",
            },
            "sales": {
                "type": "set",
                "attributes": {"intent": "sales", "skill": "sales"},
                "next": "queue",
            },
            "queue": {"type": "transfer", "queue": "support"},
        },
    }
    (flows / "main.yaml").write_text(yaml.safe_dump(flow, allow_unicode=True), encoding="utf-8")
    return flows


def _app_settings(node: AsteriskNode, tmp_path: Path, ivr: IvrSettings) -> Settings:
    routing = node.settings.routing.model_copy(update={"policy_path": _policy(tmp_path)})
    return own_crm(node.settings, tmp_path).model_copy(update={"ivr": ivr, "routing": routing})


@asynccontextmanager
async def routed_app(settings: Settings) -> AsyncIterator[web.Application]:
    """`cti serve` in this process, routing on."""
    async with serving(settings) as app:
        await schema_ready(app)
        yield app


def _interface(extension: str, context: str = "cti-sim-agent") -> str:
    return f"Local/{extension}@{context}/n"


@asynccontextmanager
async def signed_in(
    client: AmiClient, agents: dict[str, str], *, paused: bool
) -> AsyncIterator[None]:
    """Simulated agents (extension -> dialplan context) made routable, signed out afterwards."""
    for extension, context in agents.items():
        await execution.sign_in(
            client,
            extension=extension,
            interface=_interface(extension, context),
            member_name=f"sim-{extension}",
            fallback_queue=FALLBACK,
            paused=paused,
        )
    try:
        yield
    finally:
        for extension, context in agents.items():
            await execution.sign_out(
                client,
                extension=extension,
                interface=_interface(extension, context),
                fallback_queue=FALLBACK,
            )


async def _agent_user(
    session: AsyncSession, extension: str, languages: list[str], skills: dict[str, int]
) -> int:
    user = await create_user(
        session,
        username=f"agent{extension}",
        password="password1",
        role="agent",
        extension=extension,
        languages=languages,
    )
    for skill, level in skills.items():
        await set_skill(session, user.id, skill, level)
    return user.id


async def _customer(session: AsyncSession, name: str, number: str, tier: str, lang: str) -> int:
    data = {"name": name, "phones": [{"number": number}], "tier_override": tier, "language": lang}
    return (await create_customer(session, CustomerIn.model_validate(data), "CN")).id


# Who calls, in this order: (name, number, CRM tier, language, key pressed: 1 billing, 2 sales)
CALLERS = [
    ("c1 standard en sales", "+8613900000001", "standard", "en", "2"),
    ("c2 gold zh billing", "+8613900000002", "gold", "zh", "1"),
    ("c3 standard zh billing", "+8613900000003", "standard", "zh", "1"),
    ("c4 platinum en billing", "+8613900000004", "platinum", "en", "1"),
    ("c5 silver en sales", "+8613900000005", "silver", "en", "2"),
    ("c6 gold zh sales", "+8613900000006", "gold", "zh", "2"),
]
# The default policy's rules, by hand. All six wait while the agents are on a break; then one
# agent at a time becomes free and takes the best call they qualify for (skill level >= 5, a
# language they speak). Priority = tier head start + seconds waited, so tiers decide here:
#   3003 (billing 6, sales 6; zh):     c4 platinum is English -> c2 gold (before c6 gold: earlier)
#   3002 (sales 8 once a supervisor raises it from 2; en): c4 needs billing, c6 is Chinese
#        -> c5 silver, over c1 standard who came first
#   3001 (billing 9, sales 3; en, zh): c4 platinum
#   3001 again: c6 and c1 need sales >= 5 -> c3
#   3002 again: c6 is Chinese -> c1
#   3003 again: c6
TURNS = [
    ("3003", "c2", ["tier head start", "skill level>=5", "only qualified agent"]),
    ("3002", "c5", ["tier head start", "skill level>=5", "only qualified agent"]),
    ("3001", "c4", ["tier head start", "skill level>=5", "only qualified agent"]),
    ("3001", "c3", ["skill level>=5", "only qualified agent"]),
    ("3002", "c1", ["skill level>=5", "only qualified agent"]),
    ("3003", "c6", ["skill level>=5", "only qualified agent"]),
]


async def _next_answered(log: EventLog, extension: str, answered: set[str]) -> str:
    event = await log.wait_for(
        lambda e: (
            e.get("Event") == "AgentConnect"
            and e.get("Queue") == f"agent-{extension}"
            and e.get("Linkedid") not in answered
        ),
        20,
        f"agent {extension} answering a routed call",
    )
    linkedid = str(event["Linkedid"])
    answered.add(linkedid)
    return linkedid


async def _put_skill(port: int, token: str, user_id: int, skill: str, level: int) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.put(
            f"http://127.0.0.1:{port}/api/agents/{user_id}/skills/{skill}",
            json={"level": level},
            headers={"Authorization": f"Bearer {token}"},
        ) as response,
    ):
        assert response.status == 200, await response.text()


async def _support_figures(port: int, token: str) -> dict[str, Any]:
    """The waiting queue's row of the live model, as the wallboard and ``/live`` show it."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"http://127.0.0.1:{port}/live", headers={"Authorization": f"Bearer {token}"}
        ) as response,
    ):
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
    (row,) = [q for q in body["queues"] if q["queue"] == "support"]
    figures: dict[str, Any] = row
    return figures


async def _routing_api(
    port: int, token: str, path: str = "", move_to: str | None = None
) -> dict[str, Any]:
    """``GET /routing``, or a supervisor's move of a call (``POST .../move``) when
    ``move_to`` names the agent."""
    url = f"http://127.0.0.1:{port}/routing{path}"
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession() as http,
        (
            http.get(url, headers=headers)
            if move_to is None
            else http.post(url, json={"agent": move_to}, headers=headers)
        ) as response,
    ):
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        return body


@pytest.mark.asyncio
async def test_six_callers_three_agents_assigned_exactly_as_the_policy_says(
    routed_node: AsteriskNode, tmp_path: Path
) -> None:
    settings = _app_settings(
        routed_node,
        tmp_path,
        IvrSettings(inbound_flow="main", survey_flow=None, flows_dir=_flows(tmp_path)),
    )
    node = settings.ami.node
    async with routed_app(settings) as app, ami_observer(routed_node) as (client, log):
        sessions = async_sessionmaker(app[DATABASE], expire_on_commit=False)
        async with sessions() as session, session.begin():
            await _agent_user(session, "3001", ["en", "zh"], {"billing": 9, "sales": 3})
            bob = await _agent_user(session, "3002", ["en"], {"sales": 2})
            await _agent_user(session, "3003", ["zh"], {"billing": 6, "sales": 6})
            for name, number, tier, language, _ in CALLERS:
                await _customer(session, name, number, tier, language)
            supervisor = await create_user(
                session, username="sup", password="password1", role="supervisor"
            )
            token = await issue_token(session, supervisor)
        agents = {"3001": "cti-sim-agent", "3002": "cti-sim-agent", "3003": "cti-sim-agent"}
        async with signed_in(client, agents, paused=True):
            calls = []
            for name, number, _, _, key in CALLERS:  # each reaches the queue before the next calls
                call = await place_customer_call(
                    client,
                    context=settings.dialplan.inbound_context,
                    number=number,
                    name=name,
                    dtmf="ww".join(key * 4),  # again if a key falls between two IVR commands
                    pre_wait=1,
                    patience=90,
                )
                await log.wait_for(
                    event_is("QueueCallerJoin", Linkedid=call.uniqueid, Queue="support"),
                    30,
                    f"{name} waiting",
                )
                calls.append(call)
            label = {call.uniqueid: call.caller_name.split()[0] for call in calls}
            tracker = app[TRACKER]

            async def _all_waiting() -> bool:
                waiting = {c.linkedid for c in tracker.waiting(node, "support")}
                return set(label) <= waiting

            await poll_until(_all_waiting, 10, what="six callers waiting in support")
            # each caller has left and rejoined support at every heartbeat check (2 s) meanwhile
            rejoins = [e for e in log.events if event_is("QueueCallerJoin", Queue="support")(e)]
            assert len(rejoins) > len(label)
            waiting = await _support_figures(settings.http.port, token)
            assert (waiting["offered"], waiting["waiting"], waiting["abandoned"]) == (6, 6, 0)
            live = {c.linkedid: c for c in tracker.live_calls(node) if c.linkedid in label}
            arrival = sorted(label, key=lambda c: live[c].queued_at or 0)
            assert [label[c] for c in arrival] == ["c1", "c2", "c3", "c4", "c5", "c6"]
            c4 = live[arrival[3]]  # what a restarted router reads back
            attributes, since = await execution.call_attributes(
                client, c4.legs[c4.caller_uniqueid].channel
            )
            assert (attributes["skill"], attributes["language"]) == ("billing", "en")
            assert since is not None
            assert abs(since - (c4.queued_at or c4.arrived_at).timestamp()) <= 1.5

            await _put_skill(settings.http.port, token, bob, "sales", 8)  # a supervisor's edit
            answered: set[str] = set()
            served: list[tuple[str, str]] = []
            for extension, _, _ in TURNS:
                await agent_actions.unpause(client, _interface(extension))
                linkedid = await _next_answered(log, extension, answered)
                await agent_actions.pause(client, _interface(extension), "test: one at a time")
                served.append((extension, label[linkedid]))
            view = await _routing_api(settings.http.port, token)

            assert served == [(extension, call) for extension, call, _ in TURNS]

            async def _all_answered() -> dict[str, Any] | None:
                row = await _support_figures(settings.http.port, token)
                return row if row["answered"] == len(label) else None

            # one caller each, though each left support several times (checks, withdraws)
            support = await poll_until(_all_answered, 10, what="support's six answered")
            assert (support["offered"], support["answered"], support["abandoned"]) == (6, 6, 0)
            assert (support["waiting"], support["abandon_rate"]) == (0, 0.0)
            agent_queues = [q for q in tracker.snapshot()["queues"] if q["queue"] in _AGENT_QUEUES]
            assert sum(q["answered"] for q in agent_queues) == 6
            # the whole wait since the first join, not the last segment's ring of the agent
            assert support["asa"] > max(q["asa"] for q in agent_queues)

            async def _recorded() -> dict[str, Interaction] | None:
                async with sessions() as session:
                    rows = (
                        await session.scalars(
                            select(Interaction).where(
                                Interaction.external_key.in_([f"{node}:{c}" for c in label])
                            )
                        )
                    ).all()
                done = {r.external_key.split(":", 1)[1]: r for r in rows if r.ended_at}
                return done if len(done) == len(label) else None

            recorded = await poll_until(_recorded, 40, what="six interactions ended")
    by_label = {label[linkedid]: row for linkedid, row in recorded.items()}
    for extension, who, rules in TURNS:
        row = by_label[who]
        decision = row.routing["decision"]
        assert (decision["agent"], decision["rules"]) == (extension, rules), who
        assert decision["rule"] == rules[-1]
        assert decision["policy"] == "default-for-tests"
        assert row.routing["ivr_flow"] == "main"  # the IVR's keys stay beside the decision
        assert row.agent_name == f"sim-{extension}"
    assert by_label["c2"].routing["decision"]["overtook"] in {c for c in label if label[c] == "c1"}
    shown = {d["call"]: d["agent"] for d in view["decisions"] if "candidates" in d}
    assert {label[c]: a for c, a in shown.items()} == {c: e for e, c, _ in TURNS}


@pytest.mark.asyncio
async def test_the_preferred_agent_rings_out_is_paused_with_the_reason_and_another_answers(
    routed_node: AsteriskNode, tmp_path: Path
) -> None:
    settings = _app_settings(
        routed_node, tmp_path, IvrSettings(inbound_flow=None, survey_flow=None)
    )
    node = settings.ami.node
    number = "+8613900000009"
    async with routed_app(settings) as app, ami_observer(routed_node) as (client, log):
        sessions = async_sessionmaker(app[DATABASE], expire_on_commit=False)
        async with sessions() as session, session.begin():
            friend = await _agent_user(session, "3004", ["en"], {"billing": 5})
            await _agent_user(session, "3005", ["en"], {"billing": 5})
            customer = await _customer(session, "Loyal", number, "gold", "en")
            yesterday = datetime.now(UTC) - timedelta(days=1)
            await record_interaction(  # 3004 served this customer well yesterday
                session,
                InteractionIn(
                    node="earlier",
                    linkedid="yesterday",
                    customer_id=customer,
                    agent_id=friend,
                    arrived_at=yesterday,
                    answered_at=yesterday,
                    survey_score=5,
                ),
            )
        agents = {"3005": "cti-sim-agent", "3004": "cti-sim-agent-noanswer"}
        async with signed_in(client, agents, paused=False):  # 3005 signed in first: longer idle
            call = await place_customer_call(
                client, context=settings.dialplan.inbound_context, number=number, patience=60
            )
            paused = await log.wait_for(
                event_is("QueueMemberPause", Interface=_interface("3004", agents["3004"])),
                20,
                "3004 paused after the ring-out",
            )
            answered = await log.wait_for(
                event_is("AgentConnect", Linkedid=call.uniqueid), 20, "the call answered"
            )
            tracked = next(a for a in app[TRACKER].all_agents(node) if a.name == "sim-3004")
            assert (tracked.state.value, tracked.reason) == ("paused", "ring-no-answer")

            async def _recorded() -> Interaction | None:
                async with sessions() as session:
                    row = await session.scalar(
                        select(Interaction).where(
                            Interaction.external_key == f"{node}:{call.uniqueid}"
                        )
                    )
                ready = row is not None and "decision" in row.routing and row.ended_at
                return row if ready else None

            row = await poll_until(_recorded, 30, what="the interaction with its decisions")
            figures = {q["queue"]: q for q in app[TRACKER].snapshot()["queues"]}
    # one caller: offered once, answered once; the ring-out is no abandon anywhere
    counts = {
        name: (figures[name]["offered"], figures[name]["answered"], figures[name]["abandoned"])
        for name in ("support", "agent-3004", "agent-3005")
    }
    assert counts == {"support": (1, 1, 0), "agent-3004": (1, 0, 0), "agent-3005": (1, 1, 0)}
    assert (paused["Paused"], paused["PausedReason"]) == ("1", "ring-no-answer")
    assert answered["Queue"] == "agent-3005"
    rings = (routed_node.instance.log_dir / "queue_log").read_text(encoding="utf-8")
    assert f"|{call.uniqueid}|agent-3004|sim-3004|RINGNOANSWER|3000" in rings
    [rang] = row.routing["no_answer"]
    assert (rang["agent"], rang["reason"], rang["timeout_s"]) == ("3004", "ring-no-answer", 3)
    decision = row.routing["decision"]
    assert decision["agent"] == "3005"
    assert decision["no_answer"][0]["agent"] == "3004"
    assert row.agent_name == "sim-3005"


@pytest.mark.asyncio
async def test_a_caller_who_hangs_up_after_several_heartbeat_checks_is_one_abandon(
    routed_node: AsteriskNode, tmp_path: Path
) -> None:
    settings = _app_settings(
        routed_node, tmp_path, IvrSettings(inbound_flow=None, survey_flow=None)
    )
    node = settings.ami.node
    async with routed_app(settings) as app, ami_observer(routed_node) as (client, log):
        # nobody signed in: the caller waits, leaving and rejoining support every check (2 s);
        # a caller who came before the router's first heartbeat would go to the fallback queue
        await _router_heartbeat(client)
        call = await call_through_ivr(
            (client, log), routed_node, "+8613900000012", until="hung_up", within=20, patience=5
        )
        tracker = app[TRACKER]

        async def _ended() -> bool:
            return tracker.ended_call(node, call.uniqueid) is not None

        await poll_until(_ended, 10, what="the call ended in the live model")
        figures = {q["queue"]: q for q in tracker.snapshot()["queues"]}
    said = [e for e in log.events if event_is("QueueCallerAbandon", Linkedid=call.uniqueid)(e)]
    assert len(said) >= 2  # app_queue's "abandon" at each check, and at the hang-up
    support = figures["support"]
    assert (support["offered"], support["answered"], support["abandoned"]) == (1, 0, 1)
    assert (support["waiting"], support["abandon_rate"]) == (0, 1.0)


@pytest.mark.asyncio
async def test_with_the_router_killed_the_fallback_queue_keeps_calls_flowing(
    routed_node: AsteriskNode, tmp_path: Path
) -> None:
    serve = ServeProcess(routed_node, tmp_path / "serve.log")
    serve.env.update(
        CTI_ROUTING__ENABLED="true",
        CTI_ROUTING__LEASE_SECONDS="3",
        CTI_ROUTING__CHECK_SECONDS="2",
        CTI_ROUTING__POLICY_PATH=str(_policy(tmp_path)),
        CTI_DATABASE__URL=f"sqlite+aiosqlite:///{tmp_path / 'crm.db'}",
        CTI_RECORDER__SPOOL_PATH=str(tmp_path / "spool.jsonl"),
    )
    context = routed_node.settings.dialplan.inbound_context
    async with (
        ami_observer(routed_node) as (client, log),
        signed_in(client, {"3005": "cti-sim-agent"}, paused=True),
    ):
        serve.start()
        try:
            await serve.wait_ready()

            await _router_heartbeat(client)
            waiting = await place_customer_call(client, context=context, number="+861", patience=60)
            await log.wait_for(
                event_is("QueueCallerJoin", Linkedid=waiting.uniqueid, Queue="support"),
                15,
                "a caller waiting for the router",
            )
        finally:
            assert serve.process is not None
            serve.process.send_signal(signal.SIGKILL)  # no goodbye: the lease has to lapse
            serve.process.wait(10)
        await agent_actions.unpause(client, _interface("3005"))
        fresh = await place_customer_call(client, context=context, number="+862", patience=60)
        for call in (waiting, fresh):
            connected = await log.wait_for(
                event_is("AgentConnect", Linkedid=call.uniqueid), 30, "answered without the router"
            )
            assert connected["Queue"] == FALLBACK


@pytest.mark.asyncio
async def test_a_supervisor_moves_a_waiting_call_to_an_agent_who_answers_it(
    routed_node: AsteriskNode, tmp_path: Path
) -> None:
    settings = _app_settings(
        routed_node, tmp_path, IvrSettings(inbound_flow=None, survey_flow=None)
    )
    node, port = settings.ami.node, settings.http.port
    async with routed_app(settings) as app, ami_observer(routed_node) as (client, log):
        sessions = async_sessionmaker(app[DATABASE], expire_on_commit=False)
        async with sessions() as session, session.begin():
            await _agent_user(session, "3004", ["en"], {"billing": 5})
            await _agent_user(session, "3005", ["en"], {"billing": 5})
            supervisor = await create_user(
                session, username="sup", password="password1", role="supervisor"
            )
            token = await issue_token(session, supervisor)
        # 3004 signed in first: idle longest, the policy's own choice for the call
        agents = {"3004": "cti-sim-agent", "3005": "cti-sim-agent"}
        async with signed_in(client, agents, paused=True):
            call = await place_customer_call(
                client, context=settings.dialplan.inbound_context, number="+8613900000011"
            )

            async def _waiting() -> dict[str, Any] | None:
                view = await _routing_api(port, token)
                calls = [c for c in view["waiting"] if c["call"] == call.uniqueid]
                agents_known = {a["agent"] for a in view["agents"]}
                return calls[0] if calls and {"3004", "3005"} <= agents_known else None

            await poll_until(_waiting, 15, what="the call waiting, seen by the router")
            moved = await _routing_api(
                port, token, f"/calls/{node}/{call.uniqueid}/move", move_to="3005"
            )
            assert moved["moved_to"] == "3005"
            for extension in agents:  # 3004 first: free first and longest idle
                await agent_actions.unpause(client, _interface(extension))
            rang = await log.wait_for(
                event_is("AgentCalled", Linkedid=call.uniqueid), 20, "an agent ringing"
            )
            answered = await log.wait_for(
                event_is("AgentConnect", Linkedid=call.uniqueid), 20, "the call answered"
            )

            async def _recorded() -> Interaction | None:
                async with sessions() as session:
                    row = await session.scalar(
                        select(Interaction).where(
                            Interaction.external_key == f"{node}:{call.uniqueid}"
                        )
                    )
                ready = row is not None and "decision" in row.routing and row.answered_at
                return row if ready else None

            row = await poll_until(_recorded, 30, what="the interaction with its decision")
            support = await _support_figures(port, token)
    assert (rang["Queue"], answered["Queue"]) == ("agent-3005", "agent-3005")
    assert (support["offered"], support["answered"], support["abandoned"]) == (1, 1, 0)
    decision = row.routing["decision"]
    assert (decision["agent"], decision["rule"]) == ("3005", "supervisor move to agent")
    assert decision["moved_by"] == "sup"
    assert row.agent_name == "sim-3005"


async def _router_heartbeat(client: AmiClient) -> None:
    """Until the router's heartbeat in Asterisk is in the future: the dialplan routes calls."""

    async def _leased() -> bool:
        reply = await client.send_action("Getvar", {"Variable": execution.HEARTBEAT})
        first = reply[0] if isinstance(reply, list) else reply
        return int(first.get("Value") or 0) > time.time()

    await poll_until(_leased, 10, what="the router's heartbeat in Asterisk")
