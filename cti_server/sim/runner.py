"""``cti simulate``: realistic traffic into a real Asterisk, through the real inbound path.

Calls are placed at their arrival times (:mod:`arrivals`) with a plan each (:mod:`plan`);
virtual agents (queue members that answer and talk for the call's drawn talk time) answer where
no person is signed in; with routing on they sign in the routed way (their own queue
``agent-<extension>`` and the fallback queue, never the waiting queues), so the router chooses
who takes each call. The simulator follows its calls on its own AMI link: when an agent answers
it tells the customer to speak (the persona's line, for transcription and complaint
detection); when the agent has hung up and the survey asks, the customer keys their persona's
score and hangs up; a customer whose persona calls back calls again about the same thing a
little later; and it counts every call to the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field

from panoramisk.message import Message

from cti_server.config import Settings
from cti_server.routing.inputs import personal_queue
from cti_server.sim.arrivals import Arrival
from cti_server.sim.callers import choose_caller
from cti_server.sim.plan import Caller, CallPlan, call_again, plan_call, spoken
from cti_server.sim.simulation import (
    SimulatedCall,
    add_sim_agent,
    customer_connected,
    place_customer_call,
)
from cti_server.telephony.ami_client import AmiClient, AmiError

log = logging.getLogger(__name__)

Planner = Callable[[Arrival, Caller | None, random.Random], CallPlan]
SURVEY_KEY_AFTER = 3.5
"""Seconds from the survey's start to the customer's key: after the question (2.4 s in
English, 4.3 s in Chinese) or during it, before its 6 s wait for a key is over, with room for a
slow start of the survey's AGI (a key pressed before it asks is lost)."""
SURVEY_HANG_UP_AFTER = 2.0
"""Seconds from the score to hanging up ("to leave a comment, press 1; otherwise hang up")."""


@dataclass
class Summary:
    """What happened to the simulated calls, as Asterisk reported it."""

    placed: int = 0
    failed: int = 0
    answered: int = 0
    abandoned: int = 0
    ended: int = 0
    rated: int = 0
    called_again: int = 0
    by_intent: Counter[str] = field(default_factory=Counter)
    by_persona: Counter[str] = field(default_factory=Counter)

    def lines(self) -> list[str]:
        return [
            f"placed {self.placed} (failed {self.failed}), answered {self.answered}, "
            f"abandoned in queue {self.abandoned}, ended {self.ended}",
            f"rated in the survey {self.rated}, called again about the same thing "
            f"{self.called_again}",
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
        call_back_after: float | None = None,
        planner: Planner = plan_call,
        stay: float | None = None,
        say_choices: bool = False,
    ) -> None:
        """``call_back_after``: seconds after their call ends that a customer whose persona
        calls back calls again (None, the default: nobody does, so that ``max_calls`` is the
        number of calls); ``planner``: what each caller does; ``stay``: seconds a customer
        stays on the line after saying their line to the agent (None: the dialplan's 60);
        ``say_choices``: customers say their menu choice aloud as they key it."""
        self._settings = settings
        self._callers = callers
        self._agents = tuple(agents)
        self._rng = random.Random(seed)  # noqa: S311 - simulated traffic, not security
        self._call_back_after = call_back_after
        self._planner = planner
        self._stay = stay
        self._say_choices = say_choices
        self._calls: dict[str, tuple[SimulatedCall, CallPlan]] = {}
        self._live: set[str] = set()
        self._queued: set[str] = set()
        self._answered: set[str] = set()
        self._customers: dict[str, str] = {}  # linkedid -> the customer's own channel
        self._calling_back = 0
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
                for queue in self._queues_of(ext):
                    await add_sim_agent(self.ami, queue, ext)
            started = time.monotonic()
            for count, arrival in enumerate(arrivals):
                if max_calls is not None and count >= max_calls:
                    break
                delay = arrival.at - (time.monotonic() - started)
                if delay > 0:
                    await asyncio.sleep(delay)  # the arrival process itself, not a wait for work
                await self._place(arrival)
            longest = max([60.0, *self._patience()])
            again = self._call_back_after
            await self._until_all_ended(longest if again is None else 2 * longest + again)
        finally:
            for task in list(self._tasks):
                task.cancel()
            link.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await link
        return self.summary

    def _queues_of(self, extension: str) -> tuple[str, ...]:
        """Routing on: the agent's own queue and the fallback (as the desktop signs people
        in; none for an agent the dialplan gives no queue of their own); off: the default
        queue."""
        settings = self._settings
        if not settings.routing.enabled:
            return (settings.dialplan.default_queue,)
        if extension not in {agent.extension for agent in settings.dialplan.agents}:
            log.warning("virtual agent %s has no queue of its own (dialplan.agents)", extension)
            return ()
        return (personal_queue(extension), settings.routing.fallback_queue)

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
        await self._place_plan(self._planner(arrival, caller, self._rng))

    async def _place_plan(self, plan: CallPlan) -> None:
        dtmf, said = spoken(plan) if self._say_choices else (plan.dtmf, "")
        try:
            call = await place_customer_call(
                self.ami,
                context=self._settings.dialplan.inbound_context,
                number=plan.number,
                name=plan.name,
                dtmf=dtmf,
                audio=said,
                pre_wait=plan.pre_wait,
                patience=plan.patience,
                speech=plan.persona.sound,
                talk=plan.talk,
                stay=self._stay,
            )
        except (AmiError, TimeoutError) as exc:
            self.summary.failed += 1
            log.warning("simulated call not placed: %s", exc)
            return
        self._calls[call.uniqueid] = (call, plan)
        self._live.add(call.uniqueid)
        self.summary.placed += 1
        self.summary.called_again += plan.again
        self.summary.by_intent[plan.intent] += 1
        self.summary.by_persona[plan.persona.name] += 1

    async def _until_all_ended(self, timeout: float) -> None:
        self._placing_done = True
        if not self._live and not self._calling_back:
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
        call, plan = known
        uniqueid = message.get("Uniqueid")
        if uniqueid == f"{linkedid}-c" and message.get("Channel"):
            self._customers[linkedid] = str(message["Channel"])  # the customer's half
        if event == "AgentConnect" and linkedid not in self._answered:
            self._answered.add(linkedid)
            self.summary.answered += 1
            self._spawn(self._speak(call))
        elif event == "QueueCallerJoin":
            self._queued.add(linkedid)
        elif (
            event == "Newexten"
            and uniqueid == linkedid
            and message.get("Application") == "AGI"
            and str(message.get("AppData", "")).endswith("survey")
            and plan.persona.survey is not None
            and linkedid in self._answered
        ):
            self._spawn(self._rate(linkedid, plan.persona.survey))
        elif event == "Hangup" and uniqueid == linkedid:
            self._ended(linkedid, plan)

    def _ended(self, linkedid: str, plan: CallPlan) -> None:
        self._live.discard(linkedid)
        self._customers.pop(linkedid, None)
        self.summary.ended += 1
        if linkedid in self._queued and linkedid not in self._answered:
            self.summary.abandoned += 1
        again = call_again(plan)
        if again is not None and self._call_back_after is not None and linkedid in self._answered:
            self._calling_back += 1
            self._spawn(self._call_again(again, self._call_back_after))
        self._check_all_ended()

    def _check_all_ended(self) -> None:
        if self._placing_done and not self._live and not self._calling_back:
            self._all_ended.set()

    def _spawn(self, work: Coroutine[None, None, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _call_again(self, plan: CallPlan, after: float) -> None:
        try:
            await asyncio.sleep(after)  # the customer's own pause before calling again
            await self._place_plan(plan)
        finally:
            self._calling_back -= 1
            self._check_all_ended()

    async def _rate(self, linkedid: str, score: int) -> None:
        """The survey asks to rate the call: key the persona's score, then hang up."""
        await asyncio.sleep(SURVEY_KEY_AFTER)  # the customer listens to the question first
        channel = self._customers.get(linkedid)
        if channel is None:
            return  # hung up meanwhile
        try:
            await self._act("PlayDTMF", {"Channel": channel, "Digit": str(score)})
            self.summary.rated += 1
            await asyncio.sleep(SURVEY_HANG_UP_AFTER)
            if linkedid in self._customers:
                await self._act("Hangup", {"Channel": channel})
        except (AmiError, TimeoutError) as exc:
            if linkedid in self._customers:  # else they hung up meanwhile (no survey after all)
                log.warning("simulated customer %s did not rate the call: %s", linkedid, exc)

    async def _act(self, action: str, fields: dict[str, str]) -> None:
        reply = await self.ami.send_action(action, fields, timeout=10.0)
        first = reply[0] if isinstance(reply, list) else reply
        if not first.success:
            raise AmiError(f"{action} refused: {first.get('Message', '')}")

    async def _speak(self, call: SimulatedCall) -> None:
        try:
            await customer_connected(self.ami, call)
        except (AmiError, TimeoutError) as exc:
            log.warning("simulated customer %s not told to speak: %s", call.uniqueid, exc)
