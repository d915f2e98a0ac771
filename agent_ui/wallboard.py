"""The supervisor's wallboard: live queues, the agent grid, alerts, and supervision actions.

The live model comes from the tracker; a change on the bus marks it stale and the sockets of
the wallboards get a fresh view at most every ``PUSH_INTERVAL`` (and every ``REFRESH`` anyway, so
that waits keep counting). Actions (listen, whisper, barge, force pause, force logout) need the
supervisor role on every message.

With routing on (``UiDeps.routing``), waiting calls carry the router's effective priority, and a
supervisor may change a call's priority or move it to one agent; the wallboard calls the router
in-process, so the checks of its HTTP edge (role, payload) are made here on every message. With
routing off a waiting call's priority is app_queue's own (a whole number, higher first), set with
``QueueChangePriorityCaller``; moving a call to one agent needs the router and is refused.

Live complaint alerts (``ComplaintDetected`` during a call) join the alerts panel: each is sent
to the open boards as it comes (``{"type": "alert"}``), not with the next view. What is being
said on a call (``TranscriptPartial``) goes only to the wallboards that asked to follow that call
(a supervisor expanding its row). An agent's desk sees a call's transcript only when the call is
handed over to it: what was said so far, redacted (:mod:`agent_ui.handover`), never live.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agent_ui import charts
from agent_ui.auth import UI_SESSION, pages, render
from agent_ui.call_chain import duration
from agent_ui.deps import DEPS, TEMPLATES, UiDeps
from agent_ui.messages import parsed
from agent_ui.pop import PopService
from agent_ui.staffing_live import LiveStaffing
from agent_ui.ws import Connection, Hub, Reply, UiError
from crm_core.access import least
from crm_core.agent_figures import agent_segments
from crm_core.call_quality import audio_by_extension
from crm_core.people import names_by_extension
from cti_server.bus import Bus, Subscription
from cti_server.control import WRAP_UP_REASON, AgentView, SupervisorRouting
from cti_server.events import (
    AgentRinging,
    AgentState,
    AgentStateChanged,
    CallAnswered,
    CallEnded,
    CallKey,
    CallQueued,
    CallStarted,
    ComplaintDetected,
    TranscriptPartial,
    extension_of,
)

log = logging.getLogger(__name__)

PUSH_INTERVAL = 0.25
REFRESH = 5.0
NAMES_EVERY = 30.0
COMPLAINT_ALERTS = 20  # the latest live complaint alerts kept
COMPLAINT_ALERT_AGE = timedelta(minutes=30)  # and shown this long
TRANSCRIPT_LINES = 40  # finished utterances kept per call for a wallboard that opens it late

ROUTING_OFF = "routing is off: calls wait in plain queues, so no agent can be chosen for a call"


class _CallControl(BaseModel):
    """A supervisor's message about one waiting call: strict, nothing unknown let through."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    node: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,40}$")]
    linkedid: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]


class PriorityChange(_CallControl):
    type: Literal["call_priority"]
    adjust: float = Field(strict=True, ge=-3600, le=3600, allow_inf_nan=False)
    """Virtual seconds added to the call's priority (negative moves it back; 0 undoes)."""


class QueuePriority(_CallControl):
    type: Literal["call_priority"]
    priority: int = Field(strict=True, ge=0, le=1000)
    """app_queue's priority of the waiting caller (routing off): higher is offered first."""


class CallMove(_CallControl):
    type: Literal["call_move"]
    agent: Annotated[str, StringConstraints(pattern=r"^[0-9]{2,10}$")]
    """The extension of the only agent who may take the call from now on."""


@dataclass
class _Transcript:
    """What has been said on a live call: finished lines, and what each speaker says now."""

    lines: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=TRANSCRIPT_LINES))
    saying: dict[str, str] = field(default_factory=dict)


class Wallboard:
    """What every wallboard shows, pushed when it changes."""

    TRACKED = (CallStarted, CallQueued, AgentRinging, CallAnswered, CallEnded, AgentStateChanged)
    LIVE = (ComplaintDetected, TranscriptPartial)
    ONLY_STALE = (CallStarted, AgentRinging, CallAnswered, AgentStateChanged)
    """Of those tracked, what only makes the view stale: not queued while no board watches
    (a board's greeting reads the view afresh), a cost per ring spared at 1,000 agents."""

    def __init__(self, deps: UiDeps, hub: Hub, pops: PopService) -> None:
        self.deps = deps
        self.hub = hub
        self.pops = pops
        self._stale = asyncio.Event()
        self._subscription: Subscription | None = None
        self._complaints: deque[dict[str, Any]] = deque(maxlen=COMPLAINT_ALERTS)
        self._transcripts: dict[CallKey, _Transcript] = {}
        self._following: dict[Connection, set[CallKey]] = {}
        self._names: dict[str, str] = {}  # the people at the extensions, from the CRM
        self._poor_audio: dict[str, str] = {}  # extensions flagged today, in words
        self._names_read = -math.inf
        self.staffing = (  # the plan beside now, when the server offers plans
            LiveStaffing(
                deps.staffing, deps.zone, within_s=deps.service_level, started=deps.live.clock()
            )
            if deps.staffing is not None
            else None
        )
        hub.greet("wallboard", self.greeting)
        for kind, handler in (
            ("spy", self.spy),
            ("force_pause", self.force_pause),
            ("force_logout", self.force_logout),
            ("transcript", self.follow_transcript),
            ("call_priority", self.change_priority),
            ("call_move", self.move_call),
        ):
            hub.handle(kind, least("wallboard.watch"), ("wallboard",), handler)

    def view(self) -> dict[str, Any]:
        """The tracker's snapshot, with each agent's extension and the tier of their caller."""
        live = self.deps.live
        snapshot = live.snapshot()
        calls = {CallKey(c["node"], c["linkedid"]): c for c in snapshot["calls"]}
        for agent in snapshot["agents"]:
            agent["extension"] = extension_of(agent["agent"]) or ""
            agent["name"] = self._names.get(agent["extension"], "")
            agent["audio"] = self._poor_audio.get(agent["extension"], "")
            agent["tier"] = self.pops.tier_of(agent["node"], agent["linkedid"])
            call = calls.get(CallKey(agent["node"], agent["linkedid"]))
            agent["caller"] = call["caller_name"] or call["caller_number"] if call else ""
            if agent["state"] == AgentState.PAUSED and agent["reason"] == WRAP_UP_REASON:
                agent["state"] = AgentState.WRAP_UP.value
        routed = self._routed_calls()
        for call in snapshot["calls"]:
            call["tier"] = self.pops.tier_of(call["node"], call["linkedid"])
            call["agent_label"] = self._agent_label(call["agent"])
            call["service_queue"], call["offered_to"] = self._queues_of(call)
            if routed is not None:
                call["routing"] = routed.get(CallKey(call["node"], call["linkedid"]))
        routing = self.deps.routing
        if routing is not None:  # an agent's own queue is the router's, not a service
            queues = snapshot["queues"]
            snapshot["queues"] = [q for q in queues if routing.agent_of_queue(q["queue"]) is None]
        now = live.clock()
        limit = self.deps.settings.long_wait_seconds
        alerts = [
            {
                "kind": "long_wait",
                "queue": stats.name,
                "linkedid": linkedid,
                "seconds": round((now - joined).total_seconds()),
            }
            for stats in live.all_queues()
            for linkedid, joined in stats.waiting.items()
            if (now - joined).total_seconds() >= limit
        ]
        alerts += [
            alert
            for alert in self._complaints
            if now - datetime.fromisoformat(alert["at"]) <= COMPLAINT_ALERT_AGE
        ]
        ahead = (
            self.staffing.rows(now, snapshot["agents"], routing=routing is not None)
            if self.staffing is not None
            else []
        )
        alerts += [
            {"kind": "staffing", "queue": q["queue"], "message": q["warning"]}
            for q in ahead
            if q["warning"]
        ]
        return {
            "type": "wallboard",
            "at": now.isoformat(),
            **snapshot,
            "alerts": alerts,
            "routing": routed is not None,
            "staffing": ahead,
        }

    def _queues_of(self, call: dict[str, Any]) -> tuple[str, str]:
        """The service queue the customer called (not the agent's own queue the router rings
        them through), and the person a routed call is offered to ("" if none)."""
        routing = self.deps.routing
        queues = [*call.get("waits", []), call["queue"]]
        if routing is None:
            return call["queue"], ""
        service = next((q for q in queues if q and routing.agent_of_queue(q) is None), "")
        offered = next((e for q in queues if q and (e := routing.agent_of_queue(q))), None)
        if offered is None:
            return service, ""
        name = self._names.get(offered, "")
        return service, f"{name} ({offered})" if name else offered

    def _routed_calls(self) -> dict[CallKey, dict[str, Any]] | None:
        """What the router says of each waiting call (priority, move), None with routing off."""
        router = self.deps.routing
        if router is None:
            return None
        return {
            CallKey(str(call["node"]), str(call["call"])): {
                "priority": (call.get("priority") or {}).get("effective"),
                "adjust": (call.get("priority") or {}).get("adjust", 0.0),
                "moved_to": call.get("moved_to"),
                "ringing": call.get("ringing"),
            }
            for call in router.snapshot()["waiting"]
        }

    def _watched(self, watched: bool) -> None:
        """A board watches (its greeting) or none does (the push found none)."""
        if self._subscription is not None:
            self._subscription.mute(*(() if watched else self.ONLY_STALE))

    async def greeting(self, connection: Connection) -> list[dict[str, Any]]:
        self._watched(True)
        await self._read_names()
        await self._plan_ahead()
        return [self.view()]

    async def _plan_ahead(self) -> None:
        """The plan of the queues customers call (those of their calls, and with plain
        queues those agents are in), asked once per interval."""
        now = self.deps.live.clock()
        if self.staffing is None or not self.staffing.due(now):
            return
        routing = self.deps.routing
        snapshot = self.deps.live.snapshot()
        queues = {q["queue"] for q in snapshot["queues"]}
        if routing is None:
            queues.update(q for agent in snapshot["agents"] for q in agent["queues"])
        else:
            queues = {q for q in queues if routing.agent_of_queue(q) is None}
        await self.staffing.refresh(now, queues)

    async def run(self, bus: Bus) -> None:
        """Mark the view stale on every change and pass on live transcripts, until cancelled."""
        subscription = self._subscription = bus.subscribe(*self.TRACKED, *self.LIVE)
        self._watched(bool(self.hub.wallboards()))
        try:
            async for event in subscription:
                if isinstance(event, TranscriptPartial):
                    await self._said(event)
                    continue
                if isinstance(event, ComplaintDetected):
                    if not event.during_call:
                        continue  # after the call it is a case for the review, not an alert
                    await self._alert(self._complaint_alert(event))
                elif isinstance(event, CallEnded):
                    self._transcripts.pop(CallKey.of(event), None)
                elif isinstance(event, CallQueued) and self.staffing is not None:
                    self.staffing.queued(event.queue, self.deps.live.clock())
                self._stale.set()
        finally:
            self._subscription = None
            subscription.close()

    async def _alert(self, alert: dict[str, Any]) -> None:
        """A live complaint alert goes to the open boards at once, as its own message (the
        view's push is throttled and first reads names and the staffing plan: up to
        ``PUSH_INTERVAL`` and more); the view carries it too, for boards that open later."""
        self._complaints.append(alert)
        await self.hub.send_all(self.hub.wallboards(), {"type": "alert", "alert": alert})

    def _agent_label(self, agent: str) -> str:
        """Who takes a call as a supervisor knows them: "alice (8101)", else the queue's name
        for the member."""
        extension = extension_of(agent) if agent else ""
        name = self._names.get(extension or "", "")
        return f"{name} ({extension})" if name else agent

    def _complaint_alert(self, event: ComplaintDetected) -> dict[str, Any]:
        call = self.deps.live.call(event.node, event.linkedid)
        spans = [e for e in event.evidence if isinstance(e, dict) and e.get("text")]
        return {
            "kind": "complaint",
            "node": event.node,
            "linkedid": event.linkedid,
            "caller": (call.caller_name or call.caller_number) if call else "",
            "agent": self._agent_label(call.agent) if call else "",
            "category": event.category,
            "severity": event.severity,
            "probability": event.probability,
            "said": str(spans[0]["text"])[:200] if spans else "",
            "at": self.deps.live.clock().isoformat(),
        }

    async def _said(self, event: TranscriptPartial) -> None:
        key = CallKey.of(event)
        if self.deps.live.call(*key) is None and key not in self._transcripts:
            return  # a call we do not follow (over, or another server's)
        transcript = self._transcripts.setdefault(key, _Transcript())
        speaker, text = event.speaker[:16], event.text[:500]
        if event.final:
            transcript.saying.pop(speaker, None)
            if text:
                transcript.lines.append({"speaker": speaker, "text": text, "start": event.start})
        else:
            transcript.saying[speaker] = text
        followers = [c for c, keys in self._following.items() if key in keys]
        if followers:
            message = {
                "type": "transcript",
                "node": event.node,
                "linkedid": event.linkedid,
                "speaker": speaker,
                "text": text,
                "final": event.final,
            }
            await self.hub.send_all(followers, message)

    async def follow_transcript(self, connection: Connection, message: dict[str, Any]) -> Reply:
        """A wallboard opens (``follow: true``) or closes a call's live transcript."""
        for gone in [c for c in self._following if c not in self.hub.connections]:
            del self._following[gone]
        key = CallKey(str(message.get("node", ""))[:40], str(message.get("linkedid", ""))[:64])
        following = self._following.setdefault(connection, set())
        if not message.get("follow", True):
            following.discard(key)
            return {"type": "transcript_closed", "node": key[0], "linkedid": key[1]}
        if self.deps.live.call(*key) is None:
            raise UiError("no such call in progress")
        following.add(key)
        transcript = self._transcripts.get(key, _Transcript())
        return {
            "type": "transcript_so_far",
            "node": key[0],
            "linkedid": key[1],
            "lines": list(transcript.lines),
            "saying": dict(transcript.saying),
        }

    async def push(self) -> None:
        """Send the view to the wallboards when stale (throttled) or every REFRESH seconds."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stale.wait(), REFRESH)
            self._stale.clear()
            boards = self.hub.wallboards()
            self._watched(bool(boards))
            if boards:
                await self._read_names()
                await self._plan_ahead()
                await self.hub.send_all(boards, self.view())
            await asyncio.sleep(PUSH_INTERVAL)

    async def _read_names(self) -> None:
        """Who is at each extension, and whose calls today sounded poor on their browser phone
        (in words), read again every NAMES_EVERY seconds: people are added and renamed rarely,
        and a flag needs several calls; the CRM away, what was read last stays."""
        if time.monotonic() - self._names_read < NAMES_EVERY:
            return
        self._names_read = time.monotonic()
        since = charts.midnight(self.deps.live.clock(), self.deps.zone)
        try:
            async with self.deps.db() as session:
                self._names = await names_by_extension(session)
                audio = await audio_by_extension(session, since, since + timedelta(days=1))
        except (DBAPIError, OSError) as exc:
            log.warning("agents' names not read, the CRM is away: %s", exc)
            return
        self._poor_audio = {ext: heard.words for ext, heard in audio.items() if heard.flagged}

    # -- actions ------------------------------------------------------------------------------

    def _agent(self, message: dict[str, Any]) -> AgentView:
        key = (str(message.get("node", "")), str(message.get("interface", "")))
        agent = self.deps.live.agent(*key)
        if agent is None:
            raise UiError("no such agent")
        return agent

    async def spy(self, connection: Connection, message: dict[str, Any]) -> Reply:
        agent = self._agent(message)
        extension = connection.session.extension
        if not extension:
            raise UiError("your user has no extension to ring")
        mode = str(message.get("mode", ""))
        await self.deps.control.spy(agent.node, agent.interface, extension, mode)
        return {"type": "info", "message": f"{mode}: your phone rings"}

    async def force_pause(self, connection: Connection, message: dict[str, Any]) -> Reply:
        agent = self._agent(message)
        reason = str(message.get("reason") or f"by {connection.session.username}")
        await self.deps.control.force_pause(agent.node, agent.interface, reason[:80])
        return {"type": "info", "message": f"{agent.name} paused"}

    async def force_logout(self, connection: Connection, message: dict[str, Any]) -> Reply:
        agent = self._agent(message)
        await self.deps.control.force_logout(agent.node, agent.interface)
        return {"type": "info", "message": f"{agent.name} logged out"}

    async def change_priority(self, connection: Connection, message: dict[str, Any]) -> Reply:
        """A waiting call's priority: changed by virtual seconds (the router's own control), or
        with plain queues set as app_queue's priority of the caller."""
        if self.deps.routing is None:
            return await self._queue_priority(parsed(QueuePriority, message))
        router = self._router()
        wanted = parsed(PriorityChange, message)
        self._steer(lambda: router.change_priority(wanted.node, wanted.linkedid, wanted.adjust))
        return {
            "type": "info",
            "message": f"call {wanted.linkedid}: priority {wanted.adjust:+g} s",
        }

    async def _queue_priority(self, wanted: QueuePriority) -> Reply:
        call = CallKey.of(wanted)
        queue = await self.deps.control.change_caller_priority(call, wanted.priority)
        self._stale.set()
        return {
            "type": "info",
            "message": f"call {wanted.linkedid}: priority {wanted.priority} in {queue}",
        }

    async def move_call(self, connection: Connection, message: dict[str, Any]) -> Reply:
        """A waiting call given to one agent only (it waits for them while they are busy)."""
        router = self._router()
        wanted = parsed(CallMove, message)
        by = connection.session.username
        self._steer(lambda: router.move(wanted.node, wanted.linkedid, wanted.agent, by=by))
        return {"type": "info", "message": f"call {wanted.linkedid}: for agent {wanted.agent}"}

    def _router(self) -> SupervisorRouting:
        if self.deps.routing is None:
            raise UiError(ROUTING_OFF)
        return self.deps.routing

    def _steer(self, change: Callable[[], object]) -> None:
        """A supervisor's change to the router (a refused one raises ``ControlError``)."""
        change()
        self._stale.set()


WALLBOARD = web.AppKey("ui_wallboard", Wallboard)


async def agents_today(
    db: async_sessionmaker[AsyncSession], now: datetime, zone: tzinfo = UTC
) -> dict[str, Any]:
    """What the "Agents today" table shows: each agent's calls, own talk and average handle
    time since the contact center's midnight (as the charts count the day), from their own
    segments; and how their latest calls today sounded on their browser phone, in words, an
    agent with several poor calls flagged (:mod:`crm_core.call_quality`)."""
    since = charts.midnight(now, zone)
    async with db() as session:
        figures = await agent_segments(session, since, since + timedelta(days=1))
        audio = await audio_by_extension(session, since, since + timedelta(days=1))
    return {"since": since, "figures": figures, "duration": duration, "audio": audio}


@pages.route("GET", "/wallboard", least("wallboard.watch"), name="wallboard")
async def wallboard_page(request: web.Request) -> web.StreamResponse:
    deps = request.app[DEPS]
    return render(
        request,
        "wallboard.html",
        user=request[UI_SESSION].display_name,
        routing=deps.routing is not None,
        staffing=deps.staffing is not None,
        **await agents_today(deps.db, datetime.now(UTC), deps.zone),
    )


@pages.route("GET", "/wallboard/agents-today", least("wallboard.watch"), name="agents_today")
async def agents_today_table(request: web.Request) -> web.StreamResponse:
    """The table alone, for the page's refresh to swap in."""
    response = render(
        request,
        "wallboard_agents.html",
        **await agents_today(request.app[DEPS].db, datetime.now(UTC), request.app[DEPS].zone),
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@pages.route(
    "GET", "/wallboard/{chart:calls|service-level}.svg", least("wallboard.watch"), name="chart"
)
async def chart(request: web.Request) -> web.StreamResponse:
    deps = request.app[DEPS]
    series = await charts.day_series(deps.db, datetime.now(UTC), deps.service_level, deps.zone)
    geometry = (
        charts.bars(series) if request.match_info["chart"] == "calls" else charts.line(series)
    )
    body = request.app[TEMPLATES].get_template("chart.svg").render(**geometry)
    return web.Response(
        text=body, content_type="image/svg+xml", headers={"Cache-Control": "no-store"}
    )
