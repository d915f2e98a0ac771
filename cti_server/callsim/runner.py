"""``cti simulate``: realistic traffic into a real Asterisk, through the real inbound path.

Calls are placed at their arrival times (:mod:`arrivals`) with a plan each (:mod:`plan`);
virtual agents (queue members that answer and talk for the call's drawn talk time) answer where
no person is signed in. The simulator follows its calls on its own AMI link: when an agent
answers it tells the customer to speak (the persona's line, for transcription and complaint
detection), and it counts every call to the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from panoramisk.message import Message

from cti_server.callsim.arrivals import Arrival
from cti_server.callsim.callers import choose_caller
from cti_server.callsim.plan import Caller, CallPlan, plan_call
from cti_server.config import Settings
from cti_server.simulation import (
    SimulatedCall,
    add_sim_agent,
    customer_connected,
    place_customer_call,
)
from cti_server.telephony.ami_client import AmiClient, AmiError

log = logging.getLogger(__name__)


@dataclass
class Summary:
    """What happened to the simulated calls, as Asterisk reported it."""

    placed: int = 0
    failed: int = 0
    answered: int = 0
    abandoned: int = 0
    ended: int = 0
    by_intent: Counter[str] = field(default_factory=Counter)
    by_persona: Counter[str] = field(default_factory=Counter)

    def lines(self) -> list[str]:
        return [
            f"placed {self.placed} (failed {self.failed}), answered {self.answered}, "
            f"abandoned in queue {self.abandoned}, ended {self.ended}",
            "intents: " + ", ".join(f"{k} {v}" for k, v in sorted(self.by_intent.items())),
            "personas: " + ", ".join(f"{k} {v}" for k, v in sorted(self.by_persona.items())),
        ]


class CallSimulator:
    def __init__(
        self,
        settings: Settings,
        callers: list[Caller],
        *,
        agents: Iterable[str] = (),
        seed: int | None = None,
    ) -> None:
        self._settings = settings
        self._callers = callers
        self._agents = tuple(agents)
        self._rng = random.Random(seed)  # noqa: S311 - simulated traffic, not security
        self._calls: dict[str, tuple[SimulatedCall, CallPlan]] = {}
        self._live: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._placing_done = False
        self._all_ended = asyncio.Event()
        self.summary = Summary()
        self.ami = AmiClient(settings.ami, self._on_event)

    async def run(self, arrivals: Iterable[Arrival], max_calls: int | None = None) -> Summary:
        """Place the calls at their times (relative to now), then wait for them to end."""
        link = asyncio.create_task(self.ami.run())
        try:
            await self.ami.wait_connected(60)
            for ext in self._agents:
                await add_sim_agent(self.ami, self._settings.dialplan.default_queue, ext)
            started = time.monotonic()
            for count, arrival in enumerate(arrivals):
                if max_calls is not None and count >= max_calls:
                    break
                delay = arrival.at - (time.monotonic() - started)
                if delay > 0:
                    await asyncio.sleep(delay)  # the arrival process itself, not a wait for work
                await self._place(arrival)
            await self._until_all_ended(max([60.0, *self._patience()]))
        finally:
            link.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await link
        return self.summary

    def placed_calls(self) -> list[str]:
        """The linkedids of the calls placed so far."""
        return list(self._calls)

    def plans(self) -> dict[str, CallPlan]:
        """What each placed call was to do, by linkedid."""
        return {linkedid: plan for linkedid, (_, plan) in self._calls.items()}

    def _patience(self) -> list[float]:
        return [plan.patience + plan.talk + 30 for _, plan in self._calls.values()]

    async def _place(self, arrival: Arrival) -> None:
        caller = choose_caller(self._callers, self._rng, arrival.klass)
        plan = plan_call(arrival, caller, self._rng)
        try:
            call = await place_customer_call(
                self.ami,
                context=self._settings.dialplan.inbound_context,
                number=plan.number,
                name=plan.name,
                dtmf=plan.dtmf,
                pre_wait=plan.pre_wait,
                patience=plan.patience,
                speech=plan.persona.sound,
                talk=plan.talk,
            )
        except (AmiError, TimeoutError) as exc:
            self.summary.failed += 1
            log.warning("simulated call not placed: %s", exc)
            return
        self._calls[call.uniqueid] = (call, plan)
        self._live.add(call.uniqueid)
        self.summary.placed += 1
        self.summary.by_intent[plan.intent] += 1
        self.summary.by_persona[plan.persona.name] += 1

    async def _until_all_ended(self, timeout: float) -> None:
        self._placing_done = True
        if not self._live:
            return
        try:
            await asyncio.wait_for(self._all_ended.wait(), timeout)
        except TimeoutError:
            log.warning("%d simulated calls still up after %.0f s", len(self._live), timeout)

    def _on_event(self, message: Message) -> None:
        event = message.get("Event")
        linkedid = str(message.get("Linkedid", ""))
        known = self._calls.get(linkedid)
        if known is None:
            return
        if event == "AgentConnect":
            self.summary.answered += 1
            task = asyncio.get_running_loop().create_task(self._speak(known[0]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif event == "QueueCallerAbandon":
            self.summary.abandoned += 1
        elif event == "Hangup" and message.get("Uniqueid") == linkedid:
            self._live.discard(linkedid)
            self.summary.ended += 1
            if self._placing_done and not self._live:
                self._all_ended.set()

    async def _speak(self, call: SimulatedCall) -> None:
        try:
            await customer_connected(self.ami, call)
        except (AmiError, TimeoutError) as exc:
            log.warning("simulated customer %s not told to speak: %s", call.uniqueid, exc)
