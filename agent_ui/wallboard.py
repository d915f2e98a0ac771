"""The supervisor's wallboard: live queues, the agent grid, alerts, and supervision actions.

The live model comes from the tracker; a change on the bus marks it stale and the sockets of
the wallboards get a fresh view at most every ``PUSH_INTERVAL`` (and every ``REFRESH`` anyway, so
that waits keep counting). Actions (listen, whisper, barge, force pause, force logout) need the
supervisor role on every message.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from agent_ui import charts
from agent_ui.auth import UI_SESSION, pages, render
from agent_ui.deps import DEPS, TEMPLATES, UiDeps
from agent_ui.desktop import WRAPUP_REASON, channel_prefix, extension_of
from agent_ui.pop import PopService
from agent_ui.ws import Connection, Hub, Reply, UiError
from cti_server.bus import Bus
from cti_server.events import (
    AgentRinging,
    AgentStateChanged,
    CallAnswered,
    CallEnded,
    CallQueued,
    CallStarted,
)
from cti_server.telephony import agent_actions as actions
from cti_server.tracker.model import Agent

PUSH_INTERVAL = 0.25
REFRESH = 5.0


class Wallboard:
    """What every wallboard shows, pushed when it changes."""

    TRACKED = (CallStarted, CallQueued, AgentRinging, CallAnswered, CallEnded, AgentStateChanged)

    def __init__(self, deps: UiDeps, hub: Hub, pops: PopService) -> None:
        self.deps = deps
        self.hub = hub
        self.pops = pops
        self._stale = asyncio.Event()
        hub.greet("wallboard", self.greeting)
        for kind, handler in (
            ("spy", self.spy),
            ("force_pause", self.force_pause),
            ("force_logout", self.force_logout),
        ):
            hub.handle(kind, "supervisor", ("wallboard",), handler)

    def view(self) -> dict[str, Any]:
        """The tracker's snapshot, with each agent's extension and the tier of their caller."""
        tracker = self.deps.tracker
        snapshot = tracker.snapshot()
        calls = {(c["node"], c["linkedid"]): c for c in snapshot["calls"]}
        for agent in snapshot["agents"]:
            agent["extension"] = extension_of(agent["agent"]) or ""
            agent["tier"] = self.pops.tier_of(agent["node"], agent["linkedid"])
            call = calls.get((agent["node"], agent["linkedid"]))
            agent["caller"] = call["caller_name"] or call["caller_number"] if call else ""
            if agent["state"] == "paused" and agent["reason"] == WRAPUP_REASON:
                agent["state"] = "wrap_up"
        for call in snapshot["calls"]:
            call["tier"] = self.pops.tier_of(call["node"], call["linkedid"])
        now = tracker.clock()
        limit = self.deps.settings.long_wait_seconds
        alerts = [
            {
                "kind": "long_wait",
                "queue": stats.name,
                "linkedid": linkedid,
                "seconds": round((now - joined).total_seconds()),
            }
            for stats in tracker.queues.values()
            for linkedid, joined in stats.waiting.items()
            if (now - joined).total_seconds() >= limit
        ]
        return {
            "type": "wallboard",
            "at": now.isoformat(),
            **snapshot,
            "alerts": alerts,
        }

    async def greeting(self, connection: Connection) -> list[dict[str, Any]]:
        return [self.view()]

    async def run(self, bus: Bus) -> None:
        """Mark the view stale on every change, until cancelled."""
        subscription = bus.subscribe(*self.TRACKED)
        try:
            async for _ in subscription:
                self._stale.set()
        finally:
            subscription.close()

    async def push(self) -> None:
        """Send the view to the wallboards when stale (throttled) or every REFRESH seconds."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stale.wait(), REFRESH)
            self._stale.clear()
            boards = self.hub.wallboards()
            if boards:
                await self.hub.send_all(boards, self.view())
            await asyncio.sleep(PUSH_INTERVAL)

    # -- actions ------------------------------------------------------------------------------

    def _agent(self, message: dict[str, Any]) -> Agent:
        key = (str(message.get("node", "")), str(message.get("interface", "")))
        agent = self.deps.tracker.agents.get(key)
        if agent is None:
            raise UiError("no such agent")
        return agent

    async def spy(self, connection: Connection, message: dict[str, Any]) -> Reply:
        agent = self._agent(message)
        extension = connection.session.extension
        if not extension:
            raise UiError("your user has no extension to ring")
        call = self.deps.tracker.calls.get((agent.node, agent.linkedid))
        prefix = channel_prefix(agent.interface)
        legs = sorted(
            (leg.channel for leg in call.live_legs() if leg.channel.startswith(prefix))
            if call
            else [],
            key=lambda name: not name.endswith(";1"),
        )
        if not legs:
            raise UiError(f"{agent.name} is not on a call")
        mode = str(message.get("mode", ""))
        phone = self.deps.settings.supervisor_phone.format(extension=extension)
        await actions.spy(self.deps.links[agent.node], phone, legs[0], mode)
        return {"type": "info", "message": f"{mode}: your phone rings"}

    async def force_pause(self, connection: Connection, message: dict[str, Any]) -> Reply:
        agent = self._agent(message)
        reason = str(message.get("reason") or f"by {connection.session.username}")
        await actions.pause(self.deps.links[agent.node], agent.interface, reason[:80])
        return {"type": "info", "message": f"{agent.name} paused"}

    async def force_logout(self, connection: Connection, message: dict[str, Any]) -> Reply:
        agent = self._agent(message)
        for queue in sorted(agent.queues):
            await actions.queue_logout(self.deps.links[agent.node], queue, agent.interface)
        return {"type": "info", "message": f"{agent.name} logged out"}


WALLBOARD = web.AppKey("ui_wallboard", Wallboard)


@pages.route("GET", "/wallboard", "supervisor", name="wallboard")
async def wallboard_page(request: web.Request) -> web.StreamResponse:
    return render(request, "wallboard.html", user=request[UI_SESSION].display_name)


@pages.route("GET", "/wallboard/{chart:calls|service-level}.svg", "supervisor", name="chart")
async def chart(request: web.Request) -> web.StreamResponse:
    deps = request.app[DEPS]
    series = await charts.day_series(deps.db, datetime.now(UTC), deps.service_level)
    geometry = (
        charts.bars(series) if request.match_info["chart"] == "calls" else charts.line(series)
    )
    body = request.app[TEMPLATES].get_template("chart.svg").render(**geometry)
    return web.Response(
        text=body, content_type="image/svg+xml", headers={"Cache-Control": "no-store"}
    )
