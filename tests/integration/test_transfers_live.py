"""Transfers, pickups and forwards made from real SIP phones, against the real Asterisk 22.

Each scenario is a customer call (the simulated caller through the inbound context and the
queue) answered by an agent's registered PJSIP phone (tests/support/phones.py: a second Asterisk
plays the phones), then handed over the way a contact center does it: by the desktop's AMI actions
(Atxfer, BlindTransfer, Redirect) or by the phone itself (feature codes keyed as RFC 4733 DTMF,
pickup codes dialled, a 302 from a forwarding phone). The CTI server runs beside it in this
process; each scenario checks its live model during the call, the ``CallEnded`` chain, who hung
up, the ``CallTransferred`` events and the CRM row.

Every scenario records the CTI Asterisk's AMI traffic into ``tests/data/ami_transfers/<name>.json``
when run with ``RECORD_AMI=1``: the replay tests build on those. The recording is written before
the model's checks, so that a model still being built does not stop it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from crm_core.models import Interaction, InteractionParty
from cti_server.app import AMI, BUS, DATABASE, SCHEMA_READY, TRACKER, build_app
from cti_server.asterisk.local import AsteriskInstance
from cti_server.config import Settings
from cti_server.events import CallEnded, CallTransferred, DomainEvent
from cti_server.sim.simulation import place_customer_call
from cti_server.telephony import agent_actions as aa
from cti_server.telephony.ami_client import AmiClient
from cti_server.telephony.fastagi import asterisk_key
from cti_server.tracker.tracker import Tracker
from tests.conftest import ami_observer
from tests.support.ami_record import DATA, record_ami
from tests.support.asterisk import AsteriskNode, node_settings, require_chroot
from tests.support.phones import Phones, PhonesInstance, connected_phones, start_phones
from tests.support.ui import add_users, sign_in
from tests.support.waiting import EventLog, event_is, poll_until

pytestmark = [pytest.mark.asterisk]

WAIT = 10.0  # seconds any one expected event may take
MODEL_WAIT = 3.0  # seconds the tracker may take to show what Asterisk reported
QUEUE = "support"  # where the inbound context queues every call (no IVR flow)
OTHER_QUEUE = "sales"  # a transfer target; other agents wait there paused, known to the tracker
RING_GROUP = "2940"
RING_GROUP_MEMBERS = ("2142", "2143")
KEYED_RING_GROUP = "2941"  # the same, for the scenario keyed on the phone
KEYED_RING_GROUP_MEMBERS = ("2232", "2233")
OTHER_QUEUE_NUMBER = "2950"  # what a phone dials for the other queue
RECORDINGS = DATA / "ami_transfers"
# each scenario has agents of its own: A answers first, B (and C) take over
EXTENSIONS = tuple(f"2{n:02d}{m}" for n in range(10, 24) for m in (1, 2, 3))


def member(extension: str) -> str:
    """The queue member name of an agent: what the tracker and the CRM call them."""
    return f"agent-{extension}"


def device(extension: str) -> str:
    return f"PJSIP/{extension}"


def _floor_settings(name: str, workdir: Path) -> Settings:
    """A contact center of its own: these agents, a ring group, SIP passwords, short rings."""
    return node_settings(
        name,
        workdir,
        dialplan={
            "sip_secret": secrets.token_urlsafe(16),
            "agents": [{"extension": e, "name": f"Agent {e}"} for e in EXTENSIONS],
            "ring_groups": [
                {"extension": RING_GROUP, "members": list(RING_GROUP_MEMBERS)},
                {"extension": KEYED_RING_GROUP, "members": list(KEYED_RING_GROUP_MEMBERS)},
            ],
            "queues": [
                {"name": QUEUE},
                {"name": OTHER_QUEUE, "extension": OTHER_QUEUE_NUMBER},
            ],
        },
    )


@pytest.fixture(scope="module")
def floor_pbx(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[AsteriskNode, PhonesInstance]]:
    """The contact center's Asterisk and the agents' phones, registered to it."""
    chroot = require_chroot()
    workdir = tmp_path_factory.mktemp("transfers")
    name = f"x{os.getpid()}"
    cti = AsteriskInstance(chroot, name, _floor_settings(name, workdir))
    cti.up()
    try:
        phones = start_phones(chroot, cti, EXTENSIONS, workdir, f"p{os.getpid()}")
        try:
            yield AsteriskNode(settings=cti.settings, instance=cti), phones
        finally:
            phones.stop()
    finally:
        cti.stop()


@dataclass
class Floor:
    """One scenario's view: the CTI server, an AMI observer, the phones."""

    node: AsteriskNode
    app: web.Application
    client: AmiClient
    log: EventLog
    phones: Phones
    published: list[DomainEvent]
    logged_in: list[tuple[str, str]] = field(default_factory=list)
    browsers: list[aiohttp.ClientSession] = field(default_factory=list)

    @property
    def base(self) -> str:
        http = self.node.settings.http
        return f"http://127.0.0.1:{http.port}"

    async def desk(self, extension: str) -> aiohttp.ClientWebSocketResponse:
        """Agent ``extension``'s desktop, signed in (a CRM user of that extension)."""
        username = f"user-{extension}"
        sessions = async_sessionmaker(self.app[DATABASE], expire_on_commit=False)
        await add_users(sessions, (username, "agent", extension))
        http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.browsers.append(http)
        status, _ = await sign_in(http, self.base, username)
        assert status == 303, f"{username} could not sign in"
        return await http.ws_connect(f"{self.base}/ui/ws?view=desk", headers={"Origin": self.base})

    @property
    def name(self) -> str:
        return self.node.settings.ami.node

    @property
    def tracker(self) -> Tracker:
        return self.app[TRACKER]

    @property
    def secrets(self) -> list[str]:
        settings = self.node.settings
        ami_secret = settings.ami.secret.get_secret_value()
        sip = settings.dialplan.sip_secret
        return [ami_secret, asterisk_key(ami_secret), sip.get_secret_value() if sip else ""]


@pytest_asyncio.fixture
async def floor(floor_pbx: tuple[AsteriskNode, PhonesInstance]) -> AsyncIterator[Floor]:
    node, phones_instance = floor_pbx
    app = build_app(node.settings)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", node.settings.http.port).start()
    try:
        await app[AMI].wait_connected(10.0)
        await asyncio.wait_for(app[SCHEMA_READY].wait(), WAIT)
        tracker, name = app[TRACKER], node.settings.ami.node

        async def _resynced() -> bool:  # the model rebuilt from Asterisk's state: calls from now
            return tracker.resync_count(name) >= 1

        await poll_until(_resynced, WAIT, what="the server's first resync")
        published: list[DomainEvent] = []
        app[BUS].listen((CallTransferred, CallEnded), published.append)
        async with (
            ami_observer(node) as (client, log),
            connected_phones(phones_instance, node.instance, log) as phones,
        ):
            scene = Floor(node, app, client, log, phones, published)
            try:
                yield scene
            finally:
                for browser in scene.browsers:
                    await browser.close()
                for queue, ext in scene.logged_in:
                    with contextlib.suppress(aa.AgentActionError):  # logged out already
                        await aa.queue_logout(client, queue, device(ext))
    finally:
        await runner.cleanup()


# ---- the steps of a scenario ------------------------------------------------------------------


@dataclass(frozen=True)
class Answered:
    """A customer call answered by agent A's phone."""

    linkedid: str
    customer: str  # the customer's channel on the CTI's Asterisk
    agent: str  # A's phone's channel there (PJSIP/<A>-...)


async def login(floor: Floor, queue: str, extension: str, *, paused: bool = False) -> None:
    await aa.queue_login(floor.client, queue, device(extension), member(extension), paused=paused)
    floor.logged_in.append((queue, extension))
    await floor.log.wait_for(
        event_is("QueueMemberAdded", Queue=queue, Interface=device(extension)), WAIT, "login"
    )


async def colleagues(floor: Floor, *extensions: str) -> None:
    """Agents the tracker knows (paused in the other queue), whom the customer's queue never
    offers a call."""
    for ext in extensions:
        await login(floor, OTHER_QUEUE, ext, paused=True)


async def customer_calls(floor: Floor, number: str) -> str:
    """A customer calls and waits in the queue; the call's linkedid."""
    placed = await place_customer_call(
        floor.client,
        context=floor.node.settings.dialplan.inbound_context,
        number=number,
        patience=60,
        pre_wait=0,
    )
    return placed.uniqueid


async def answered_by(floor: Floor, extension: str, number: str) -> Answered:
    """A customer call that agent ``extension`` (logged in to the queue) answers on the phone."""
    await login(floor, QUEUE, extension)
    linkedid = await customer_calls(floor, number)
    await floor.phones[extension].answer()
    connect = await floor.log.wait_for(
        event_is("AgentConnect", Linkedid=linkedid), WAIT, f"{extension} answers"
    )
    await floor.log.wait_for(
        event_is("BridgeEnter", Channel=connect["Channel"]), WAIT, "customer bridged"
    )
    return Answered(linkedid, str(connect["Channel"]), str(connect["DestChannel"]))


async def customer_held(floor: Floor, call: Answered) -> None:
    """The customer hears music: the transfer code was taken (Asterisk prompts for digits).
    (Each scenario holds the customer once, for its transfer.)"""
    await floor.log.wait_for(
        event_is("MusicOnHoldStart", Channel=call.customer), WAIT, "customer on hold"
    )


async def consulted(floor: Floor, extension: str) -> None:
    """The target answered the consultation call as the PBX sees it (the phone's own Asterisk
    answers first): a transfer completed before this is a blonde one, rightly labelled so."""
    prefix = f"PJSIP/{extension}-"
    await floor.log.wait_for(
        lambda m: (
            m.get("Event") == "Newstate"
            and str(m.get("Channel", "")).startswith(prefix)
            and m.get("ChannelStateDesc") == "Up"
        ),
        WAIT,
        f"{extension} answered the consultation",
    )


async def talking_to(floor: Floor, call: Answered, extension: str) -> None:
    """The customer's channel is bridged with ``extension``'s phone (Asterisk's own view)."""

    async def _together() -> bool:
        reply = await floor.client.send_action("Status", {"Channel": call.customer})
        status = [m for m in reply if m.get("Event") == "Status"] if isinstance(reply, list) else []
        bridge = str(status[0].get("BridgeID", "")) if status else ""
        if not bridge:
            return False
        info = await floor.client.send_action("BridgeInfo", {"BridgeUniqueid": bridge})
        members = (
            [str(m.get("Channel")) for m in info if m.get("Event") == "BridgeInfoChannel"]
            if isinstance(info, list)
            else []
        )
        return any(m.startswith(f"{device(extension)}-") for m in members)

    await poll_until(_together, WAIT, what=f"the customer talking to {extension}")


async def hang_up_customer(floor: Floor, call: Answered) -> None:
    await aa.hangup(floor.client, call.customer)


async def finished(floor: Floor, name: str, linkedid: str) -> CallEnded | None:
    """Wait until Asterisk has no channel left and the agents are logged out, record the
    scenario's AMI traffic, and return the server's ``CallEnded`` (None if none came)."""

    async def _no_channels() -> bool:
        reply = await floor.client.send_action("CoreShowChannels", {})
        listed = reply if isinstance(reply, list) else [reply]
        return not any(m.get("Event") == "CoreShowChannel" for m in listed)

    await poll_until(_no_channels, WAIT, interval=0.1, what="every channel gone")
    for queue, ext in list(floor.logged_in):
        await aa.queue_logout(floor.client, queue, device(ext))
        await floor.log.wait_for(
            event_is("QueueMemberRemoved", Queue=queue, Interface=device(ext)), WAIT, "logout"
        )
    floor.logged_in.clear()
    record_ami(floor.log.events, RECORDINGS / f"{name}.json", floor.secrets)

    async def _ended() -> CallEnded | None:
        return next(
            (e for e in floor.published if isinstance(e, CallEnded) and e.linkedid == linkedid),
            None,
        )

    try:
        return await poll_until(_ended, MODEL_WAIT, what="CallEnded")
    except AssertionError:
        return None


# ---- checks of the server's model -------------------------------------------------------------


class ModelChecks:
    """What the server should have made of the scenario, checked after the recording is saved
    (a check failing during the call would otherwise cut the recording short)."""

    def __init__(self, floor: Floor, linkedid: str) -> None:
        self.floor = floor
        self.linkedid = linkedid
        self.failures: list[str] = []
        self.desks: dict[str, aiohttp.ClientWebSocketResponse] = {}

    async def watch_desk(self, extension: str) -> None:
        """Open ``extension``'s desktop before the hand-over, to see it pop."""
        self.desks[extension] = await self.floor.desk(extension)

    async def taken_over(self, extension: str, kind: str, source: str) -> None:
        """During the call, once ``extension`` has the customer (handed over by ``kind`` from
        ``source``): the live party, and the pop on that agent's desk if it is watched (while
        the call lasts: a desk does not pop for a call already over)."""
        await self.party_is(extension, f"after the {kind}")
        if extension in self.desks:
            await self.desk_popped(extension, kind, source)

    async def desk_popped(self, extension: str, kind: str, by: str) -> None:
        """``extension``'s desk popped with this call, handed over (``kind``) by ``by``."""
        ws = self.desks[extension]
        deadline = time.monotonic() + MODEL_WAIT
        seen: list[Any] = []
        other: list[str] = []  # what else the desk was sent, to tell the failure
        while (left := deadline - time.monotonic()) > 0:
            try:
                message: dict[str, Any] = await ws.receive_json(timeout=left)
            except (TimeoutError, TypeError, ValueError):
                break
            other.append(str(message.get("type")))
            if message.get("type") != "pop":
                continue
            if message.get("call", {}).get("linkedid") != self.linkedid:
                continue
            handover = message.get("handover") or {}
            seen.append((handover.get("kind"), (handover.get("from") or {}).get("extension")))
            if seen[-1] == (kind, by):
                return
        told = [
            (e.kind, e.from_extension, e.to_extension)
            for e in self.floor.published
            if isinstance(e, CallTransferred) and e.linkedid == self.linkedid
        ]
        self.failures.append(
            f"desk {extension}: expected a pop {(kind, by)}, saw {seen} (messages: {other}; "
            f"CallTransferred so far: {told})"
        )

    async def party_is(self, extension: str, what: str) -> None:
        """During the call: the tracker's current party of the call is ``extension``'s phone."""
        expected = device(extension)

        async def _there() -> bool:
            call = self.floor.tracker.call(self.floor.name, self.linkedid)
            return call is not None and call.party == expected

        try:
            await poll_until(_there, MODEL_WAIT, what=f"live party {what}")
        except AssertionError:
            call = self.floor.tracker.call(self.floor.name, self.linkedid)
            seen = None if call is None else call.party
            chain = None if call is None else call.chain_dicts()
            self.failures.append(
                f"live party {what}: expected {expected}, saw {seen!r} (chain {chain})"
            )

    async def verify(
        self,
        ended: CallEnded | None,
        *,
        chain: list[tuple[str, str, str]],
        agents: list[str],
        hung_up_by: str,
        transfers: list[tuple[str, str, str, str]],
    ) -> None:
        """The chain as (party, how, by), its agents, who hung up, the ``CallTransferred``
        events as (kind, from_party, to_party, by), and the CRM row with its parties."""
        failures = list(self.failures)
        if ended is None:
            failures.append("no CallEnded for the call")
        else:
            got_chain = [(p.get("party"), p.get("how"), p.get("by")) for p in ended.chain]
            if got_chain != chain:
                failures.append(f"chain: expected {chain}, got {got_chain}")
            got_agents = [p.get("agent") for p in ended.chain]
            if got_agents != agents:
                failures.append(f"chain agents: expected {agents}, got {got_agents}")
            if ended.agent != agents[0]:
                failures.append(f"CallEnded.agent: expected {agents[0]}, got {ended.agent!r}")
            if ended.hung_up_by != hung_up_by:
                failures.append(f"hung_up_by: expected {hung_up_by}, got {ended.hung_up_by!r}")
        got_transfers = [
            (e.kind, e.from_party, e.to_party, e.by)
            for e in self.floor.published
            if isinstance(e, CallTransferred) and e.linkedid == self.linkedid
        ]
        if got_transfers != transfers:
            failures.append(f"CallTransferred: expected {transfers}, got {got_transfers}")
        row = await self._interaction()
        if row is None:
            failures.append("no interaction in the CRM")
        else:
            if row.agent_name != agents[0]:
                failures.append(f"CRM agent_name: expected {agents[0]}, got {row.agent_name!r}")
            if row.ended_by != hung_up_by:
                failures.append(f"CRM ended_by: expected {hung_up_by}, got {row.ended_by!r}")
            parties = await self._parties(row)
            if parties != chain:
                failures.append(f"CRM parties: expected {chain}, got {parties}")
        assert not failures, "\n".join(failures)

    async def _parties(self, row: Interaction) -> list[tuple[str, str, str]]:
        sessions = async_sessionmaker(self.floor.app[DATABASE], expire_on_commit=False)
        async with sessions() as session:
            found = await session.scalars(
                select(InteractionParty)
                .where(InteractionParty.interaction_id == row.id)
                .order_by(InteractionParty.position)
            )
            return [(p.party, p.how, p.by_party or "") for p in found]

    async def _interaction(self) -> Interaction | None:
        sessions = async_sessionmaker(self.floor.app[DATABASE], expire_on_commit=False)
        key = f"{self.floor.name}:{self.linkedid}"

        async def _row() -> Interaction | None:
            async with sessions() as session:
                found = await session.scalars(
                    select(Interaction).where(Interaction.external_key == key)
                )
                row = found.first()
            return row if row is not None and row.ended_at is not None else None

        try:
            return await poll_until(_row, MODEL_WAIT, what="the interaction in the CRM")
        except AssertionError:
            return None


# ---- a. attended transfer by the desktop: AMI Atxfer on the phone's channel --------------------


@pytest.mark.asyncio
async def test_attended_transfer_by_atxfer_on_the_phones_channel(floor: Floor) -> None:
    a, b = "2101", "2102"
    await colleagues(floor, b)
    call = await answered_by(floor, a, "+8613800021010")
    checks = ModelChecks(floor, call.linkedid)
    await checks.watch_desk(b)
    await checks.party_is(a, "after the answer")

    await aa.attended_transfer(floor.client, call.agent, b)
    await customer_held(floor, call)
    await floor.phones[b].answer()  # A consults B
    await consulted(floor, b)
    await floor.phones[a].hangup()  # and hands the customer over
    transfer = await floor.log.wait_for(event_is("AttendedTransfer"), WAIT, "transfer")
    assert (transfer["Result"], transfer["TransfereeChannel"]) == ("Success", call.customer)
    await talking_to(floor, call, b)
    await checks.taken_over(b, "attended", a)
    await hang_up_customer(floor, call)

    ended = await finished(floor, "attended_atxfer", call.linkedid)
    await checks.verify(
        ended,
        chain=[(device(a), "answer", ""), (device(b), "attended", device(a))],
        agents=[member(a), member(b)],
        hung_up_by="caller",
        transfers=[("attended", device(a), device(b), device(a))],
    )


# ---- b. attended transfer by the phone: the attended-transfer code, then the target -----------


@pytest.mark.asyncio
async def test_attended_transfer_keyed_on_the_phone(floor: Floor) -> None:
    a, b = "2111", "2112"
    code = floor.node.settings.dialplan.attended_transfer_code
    await colleagues(floor, b)
    call = await answered_by(floor, a, "+8613800021110")
    checks = ModelChecks(floor, call.linkedid)
    await checks.watch_desk(b)

    await floor.phones[a].key(code)
    await customer_held(floor, call)  # Asterisk took the code and asks for the number
    await floor.phones[a].key(b)
    await floor.phones[b].answer()
    await consulted(floor, b)
    await floor.phones[a].hangup()
    transfer = await floor.log.wait_for(event_is("AttendedTransfer"), WAIT, "transfer")
    assert (transfer["Result"], transfer["TransfereeChannel"]) == ("Success", call.customer)
    await talking_to(floor, call, b)
    await checks.taken_over(b, "attended", a)
    await floor.phones[b].hangup()

    ended = await finished(floor, "attended_keyed", call.linkedid)
    await checks.verify(
        ended,
        chain=[(device(a), "answer", ""), (device(b), "attended", device(a))],
        agents=[member(a), member(b)],
        hung_up_by="agent",
        transfers=[("attended", device(a), device(b), device(a))],
    )


# ---- c. blind transfer by the desktop (AMI BlindTransfer): to an agent, a queue, a ring group --


@pytest.mark.asyncio
async def test_blind_transfer_to_another_agents_phone(floor: Floor) -> None:
    a, b = "2121", "2122"
    await colleagues(floor, b)
    call = await answered_by(floor, a, "+8613800021210")
    checks = ModelChecks(floor, call.linkedid)
    await checks.watch_desk(b)

    await aa.blind_transfer(floor.client, call.agent, b, "cti-agents")
    transfer = await floor.log.wait_for(event_is("BlindTransfer"), WAIT, "transfer")
    assert (transfer["Result"], transfer["TransfereeChannel"]) == ("Success", call.customer)
    await floor.phones[b].answer()
    await talking_to(floor, call, b)
    await checks.taken_over(b, "blind", a)
    await hang_up_customer(floor, call)

    ended = await finished(floor, "blind_ami_agent", call.linkedid)
    await checks.verify(
        ended,
        chain=[(device(a), "answer", ""), (device(b), "blind", device(a))],
        agents=[member(a), member(b)],
        hung_up_by="caller",
        transfers=[("blind", device(a), device(b), device(a))],
    )


@pytest.mark.asyncio
async def test_blind_transfer_to_a_queue_answered_by_its_agent(floor: Floor) -> None:
    a, b = "2131", "2132"
    await login(floor, OTHER_QUEUE, b)  # B answers the other queue's calls
    call = await answered_by(floor, a, "+8613800021310")
    checks = ModelChecks(floor, call.linkedid)
    await checks.watch_desk(b)

    queues = [q.name for q in floor.node.settings.dialplan.queues]
    await aa.transfer_to_queue(floor.client, call.agent, OTHER_QUEUE, queues)
    await floor.log.wait_for(
        event_is("QueueCallerJoin", Channel=call.customer, Queue=OTHER_QUEUE), WAIT, "requeued"
    )
    await floor.phones[b].answer()
    await floor.log.wait_for(
        event_is("AgentConnect", Queue=OTHER_QUEUE, MemberName=member(b)), WAIT, "B answers"
    )
    await talking_to(floor, call, b)
    await checks.taken_over(b, "blind", a)
    await floor.phones[b].hangup()

    ended = await finished(floor, "blind_ami_queue", call.linkedid)
    await checks.verify(
        ended,
        chain=[(device(a), "answer", ""), (device(b), "blind", device(a))],
        agents=[member(a), member(b)],
        hung_up_by="agent",
        transfers=[("blind", device(a), device(b), device(a))],
    )


@pytest.mark.asyncio
async def test_blind_transfer_to_a_ring_group(floor: Floor) -> None:
    a, (b, c) = "2141", RING_GROUP_MEMBERS
    await colleagues(floor, b, c)
    call = await answered_by(floor, a, "+8613800021410")
    checks = ModelChecks(floor, call.linkedid)
    await checks.watch_desk(c)

    await aa.blind_transfer(floor.client, call.agent, RING_GROUP, "cti-agents")
    await floor.phones[b].wait_ringing()  # both ring; the second member answers
    await floor.phones[c].answer()
    await talking_to(floor, call, c)
    await checks.taken_over(c, "blind", a)
    await hang_up_customer(floor, call)

    ended = await finished(floor, "blind_ami_ring_group", call.linkedid)
    await checks.verify(
        ended,
        chain=[(device(a), "answer", ""), (device(c), "blind", device(a))],
        agents=[member(a), member(c)],
        hung_up_by="caller",
        transfers=[("blind", device(a), device(c), device(a))],
    )


# ---- d. blind transfer by the phone: the blind-transfer code, then the target -----------------


@pytest.mark.asyncio
async def test_blind_transfer_keyed_on_the_phone(floor: Floor) -> None:
    a, b = "2151", "2152"
    code = floor.node.settings.dialplan.blind_transfer_code
    await colleagues(floor, b)
    call = await answered_by(floor, a, "+8613800021510")
    checks = ModelChecks(floor, call.linkedid)
    await checks.watch_desk(b)

    await floor.phones[a].key(code)
    await customer_held(floor, call)
    await floor.phones[a].key(b)
    transfer = await floor.log.wait_for(event_is("BlindTransfer"), WAIT, "transfer")
    assert (transfer["Result"], transfer["TransfereeChannel"]) == ("Success", call.customer)
    await floor.phones[b].answer()
    await talking_to(floor, call, b)
    await checks.taken_over(b, "blind", a)
    await floor.phones[b].hangup()

    ended = await finished(floor, "blind_keyed", call.linkedid)
    await checks.verify(
        ended,
        chain=[(device(a), "answer", ""), (device(b), "blind", device(a))],
        agents=[member(a), member(b)],
        hung_up_by="agent",
        transfers=[("blind", device(a), device(b), device(a))],
    )


@pytest.mark.asyncio
async def test_blind_transfer_keyed_on_the_phone_to_a_queue(floor: Floor) -> None:
    a, b = "2221", "2222"
    code = floor.node.settings.dialplan.blind_transfer_code
    await login(floor, OTHER_QUEUE, b)  # B answers the other queue's calls
    call = await answered_by(floor, a, "+8613800022210")
    checks = ModelChecks(floor, call.linkedid)
    await checks.watch_desk(b)

    await floor.phones[a].key(code)
    await customer_held(floor, call)
    await floor.phones[a].key(OTHER_QUEUE_NUMBER)
    await floor.log.wait_for(
        event_is("QueueCallerJoin", Channel=call.customer, Queue=OTHER_QUEUE), WAIT, "requeued"
    )
    await floor.phones[b].answer()
    await talking_to(floor, call, b)
    await checks.taken_over(b, "blind", a)
    await hang_up_customer(floor, call)

    ended = await finished(floor, "blind_keyed_queue", call.linkedid)
    await checks.verify(
        ended,
        chain=[(device(a), "answer", ""), (device(b), "blind", device(a))],
        agents=[member(a), member(b)],
        hung_up_by="caller",
        transfers=[("blind", device(a), device(b), device(a))],
    )


@pytest.mark.asyncio
async def test_blind_transfer_keyed_on_the_phone_to_a_ring_group(floor: Floor) -> None:
    a, (b, c) = "2231", KEYED_RING_GROUP_MEMBERS
    code = floor.node.settings.dialplan.blind_transfer_code
    await colleagues(floor, b, c)
    call = await answered_by(floor, a, "+8613800022310")
    checks = ModelChecks(floor, call.linkedid)
    await checks.watch_desk(b)

    await floor.phones[a].key(code)
    await customer_held(floor, call)
    await floor.phones[a].key(KEYED_RING_GROUP)
    await floor.phones[c].wait_ringing()  # both ring; the first member answers
    await floor.phones[b].answer()
    await talking_to(floor, call, b)
    await checks.taken_over(b, "blind", a)
    await floor.phones[b].hangup()

    ended = await finished(floor, "blind_keyed_ring_group", call.linkedid)
    await checks.verify(
        ended,
        chain=[(device(a), "answer", ""), (device(b), "blind", device(a))],
        agents=[member(a), member(b)],
        hung_up_by="agent",
        transfers=[("blind", device(a), device(b), device(a))],
    )


# ---- e. blonde: the attended transfer completed while the target still rings -------------------


@pytest.mark.asyncio
async def test_blonde_transfer_then_the_target_answers(floor: Floor) -> None:
    a, b = "2161", "2162"
    await colleagues(floor, b)
    call = await answered_by(floor, a, "+8613800021610")
    checks = ModelChecks(floor, call.linkedid)
    await checks.watch_desk(b)

    await aa.attended_transfer(floor.client, call.agent, b)
    await customer_held(floor, call)
    await floor.phones[b].wait_ringing()
    await floor.phones[a].hangup()  # A does not wait for B to answer
    await floor.log.wait_for(event_is("AttendedTransfer"), WAIT, "transfer")
    await floor.phones[b].answer()  # the customer's call now
    await talking_to(floor, call, b)
    await checks.taken_over(b, "blonde", a)
    await hang_up_customer(floor, call)

    ended = await finished(floor, "blonde", call.linkedid)
    await checks.verify(
        ended,
        chain=[(device(a), "answer", ""), (device(b), "blonde", device(a))],
        agents=[member(a), member(b)],
        hung_up_by="caller",
        transfers=[("blonde", device(a), device(b), device(a))],
    )


# ---- f. pickup of a ringing agent's call: directed (**<ext>) and group (*8) --------------------


async def _picked_up(floor: Floor, name: str, code: str, a: str, b: str, number: str) -> None:
    await colleagues(floor, b)
    desk = await floor.desk(b)
    await login(floor, QUEUE, a)
    linkedid = await customer_calls(floor, number)
    await floor.phones[a].wait_ringing()
    await floor.phones[b].dial(code)  # B answers A's ringing call from B's phone
    await floor.log.wait_for(event_is("Pickup"), WAIT, "pickup")
    join = await floor.log.wait_for(event_is("QueueCallerJoin", Uniqueid=linkedid), WAIT, "queued")
    call = Answered(linkedid, str(join["Channel"]), "")
    checks = ModelChecks(floor, linkedid)
    checks.desks[b] = desk
    await talking_to(floor, call, b)
    await checks.taken_over(b, "pickup", a)
    await hang_up_customer(floor, call)

    ended = await finished(floor, name, linkedid)
    await checks.verify(
        ended,
        chain=[(device(b), "pickup", device(b))],
        agents=[member(b)],
        hung_up_by="caller",
        # B's desk pops as for a transfer: the call was ringing for A
        transfers=[("pickup", device(a), device(b), device(b))],
    )


@pytest.mark.asyncio
async def test_directed_pickup_of_a_ringing_agents_call(floor: Floor) -> None:
    a, b = "2171", "2172"
    prefix = floor.node.settings.dialplan.directed_pickup_prefix
    await _picked_up(floor, "pickup_directed", f"{prefix}{a}", a, b, "+8613800021710")


@pytest.mark.asyncio
async def test_group_pickup_of_a_ringing_agents_call(floor: Floor) -> None:
    a, b = "2181", "2182"
    code = floor.node.settings.dialplan.pickup_code
    await _picked_up(floor, "pickup_group", code, a, b, "+8613800021810")


# ---- g. a forwarding phone: the ringing agent's phone answers 302 to a colleague ---------------


@pytest.mark.asyncio
async def test_a_forwarding_phone_sends_the_queue_call_to_a_colleague(floor: Floor) -> None:
    a, b = "2191", "2192"
    await colleagues(floor, b)
    desk = await floor.desk(b)
    await floor.phones[a].forward_to(b)
    try:
        await login(floor, QUEUE, a)
        linkedid = await customer_calls(floor, number="+8613800021910")
        await floor.phones[b].answer()
    finally:
        await floor.phones[a].forward_to(None)
    join = await floor.log.wait_for(event_is("QueueCallerJoin", Uniqueid=linkedid), WAIT, "queued")
    call = Answered(linkedid, str(join["Channel"]), "")
    checks = ModelChecks(floor, linkedid)
    checks.desks[b] = desk
    await talking_to(floor, call, b)
    await checks.taken_over(b, "forward", a)
    await floor.phones[b].hangup()

    ended = await finished(floor, "forward", linkedid)
    await checks.verify(
        ended,
        chain=[(device(b), "forward", device(a))],
        agents=[member(b)],
        hung_up_by="agent",
        # B's desk pops as for a transfer: the call was ringing for A, whose phone forwarded it
        transfers=[("forward", device(a), device(b), device(a))],
    )


# ---- h. AMI Redirect of the customer's channel ------------------------------------------------


@pytest.mark.asyncio
async def test_redirect_of_the_customers_channel_to_another_agent(floor: Floor) -> None:
    a, b = "2201", "2202"
    await colleagues(floor, b)
    call = await answered_by(floor, a, "+8613800022010")
    checks = ModelChecks(floor, call.linkedid)
    await checks.watch_desk(b)

    await aa.redirect(floor.client, call.customer, b, "cti-agents")
    await floor.phones[b].answer()
    await talking_to(floor, call, b)
    await checks.taken_over(b, "redirect", a)
    await hang_up_customer(floor, call)

    ended = await finished(floor, "redirect", call.linkedid)
    await checks.verify(
        ended,
        chain=[(device(a), "answer", ""), (device(b), "redirect", "")],
        agents=[member(a), member(b)],
        hung_up_by="caller",
        transfers=[("redirect", device(a), device(b), "")],
    )


# ---- i. A -> B -> A: the customer comes back to the first agent -------------------------------


@pytest.mark.asyncio
async def test_transfer_back_to_the_first_agent(floor: Floor) -> None:
    a, b = "2211", "2212"
    await colleagues(floor, b)
    call = await answered_by(floor, a, "+8613800022110")
    checks = ModelChecks(floor, call.linkedid)
    await checks.watch_desk(a)
    await checks.watch_desk(b)

    await aa.blind_transfer(floor.client, call.agent, b, "cti-agents")
    await floor.phones[b].answer()
    await talking_to(floor, call, b)
    await checks.taken_over(b, "blind", a)
    b_leg = await floor.log.wait_for(
        lambda m: (
            m.get("Event") == "BridgeEnter"
            and str(m.get("Channel", "")).startswith(f"{device(b)}-")
        ),
        WAIT,
        "B's channel",
    )
    await aa.blind_transfer(floor.client, str(b_leg["Channel"]), a, "cti-agents")
    await floor.phones[a].answer()
    await talking_to(floor, call, a)
    await checks.taken_over(a, "blind", b)
    await floor.phones[a].hangup()

    ended = await finished(floor, "back_to_first_agent", call.linkedid)
    await checks.verify(
        ended,
        chain=[
            (device(a), "answer", ""),
            (device(b), "blind", device(a)),
            (device(a), "blind", device(b)),
        ],
        agents=[member(a), member(b), member(a)],
        hung_up_by="agent",
        transfers=[
            ("blind", device(a), device(b), device(a)),
            ("blind", device(b), device(a), device(b)),
        ],
    )
