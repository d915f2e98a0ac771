"""What the CTI server does when a customer call enters the inbound context.

Note the call (CallArrived), walk the caller through the inbound IVR flow, and hand the call to
its queue with what the IVR learned as channel variables (``CTI_QUEUE``, ``CTI_ATTR_*``). Without
a flow, or when the flow is broken, the call goes to the default queue; when this server is down
the dialplan's fallback does the same.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Protocol

from cti_server.events import (
    CallArrived,
    CallbackRequested,
    CallKey,
    DomainEvent,
    IvrFinished,
    SurveyAnswered,
)
from cti_server.ivr.channels.fastagi import FastAgiChannel
from cti_server.ivr.engine import CallerGone, Channel, IvrEngine, IvrResult, Lookup
from cti_server.ivr.registry import FlowRegistry
from cti_server.speech.audiosocket import AudioSocketServer
from cti_server.telephony.fastagi import AgiHangup, AgiSession
from cti_server.tracker.tracker import Tracker

log = logging.getLogger(__name__)


class Publisher(Protocol):
    """Where the IVR's events go: the server's bus, or the server itself seen from ``cti-agi``."""

    def publish(self, event: DomainEvent) -> None: ...


class CallSession(Protocol):
    """The call as an AGI transport shows it: its environment and its channel variables."""

    @property
    def env(self) -> Mapping[str, str]: ...

    async def get_variable(self, name: str) -> str: ...

    async def set_variable(self, name: str, value: str) -> None: ...


class InboundCalls:
    """The inbound and survey routes, the same over FastAGI (here) and classic AGI (cti-agi)."""

    def __init__(
        self,
        bus: Publisher,
        node: str,
        default_queue: str,
        *,
        flows: FlowRegistry | None = None,
        flow_name: str | None = None,
        survey_flow: str | None = None,
        estimate_wait: Callable[[str], float] | None = None,
        callers_ahead: Callable[[str], int] | None = None,
        engine: IvrEngine | None = None,
        speech: AudioSocketServer | None = None,
        caller_lookup: Callable[[CallKey], Lookup] | None = None,
    ) -> None:
        """``caller_lookup``: a call's own "whom does the caller ID name" (its identification),
        which the engine's identify step then asks instead of the engine's look-up."""
        self._bus = bus
        self._node = node
        self._default_queue = default_queue
        self._flows = flows
        self._flow_name = flow_name
        self._survey_flow = survey_flow
        self._estimate_wait = estimate_wait
        self._callers_ahead = callers_ahead
        self._engine = engine
        self._speech = speech
        self._caller_lookup = caller_lookup

    async def handle(self, session: AgiSession) -> None:
        """The FastAGI route ``inbound``."""
        await self.walk_inbound(session, FastAgiChannel(session, self._speech))

    async def survey(self, session: AgiSession) -> None:
        """The FastAGI route ``survey``."""
        await self.walk_survey(session, FastAgiChannel(session, self._speech))

    async def walk_inbound(self, session: CallSession, channel: Channel) -> None:
        env = session.env
        linkedid = await session.get_variable("${CHANNEL(linkedid)}") or env.get("agi_uniqueid", "")
        dialed = await session.get_variable("${CTI_DID}") or env.get("agi_dnid", "")
        arrived = CallArrived(
            node=self._node,
            linkedid=linkedid,
            uniqueid=env.get("agi_uniqueid", ""),
            channel=env.get("agi_channel", ""),
            caller_number=env.get("agi_callerid", ""),
            caller_name=env.get("agi_calleridname", ""),
            dialed=dialed,
        )
        log.info("call %s from %r arrived", arrived.linkedid, arrived.caller_number)
        self._bus.publish(arrived)
        flows = self._flows
        flow = flows.get(self._flow_name) if flows and self._flow_name else None
        if flows is None or flow is None or self._engine is None:
            await session.set_variable("CTI_QUEUE", self._default_queue)
            return
        # the caller's place in line as it stands now: what a callback offer keeps
        wait = self._estimate_wait(self._default_queue) if self._estimate_wait else 0.0
        ahead = self._callers_ahead(self._default_queue) if self._callers_ahead else -1
        key = CallKey(self._node, linkedid)
        result = await self._engine.run(
            flow,
            channel,
            arrived.caller_number,
            known={
                "estimated_wait": f"{wait:.0f}",
                **flows.calendar().attributes(datetime.now(UTC)),
            },
            by_caller_id=self._caller_lookup(key) if self._caller_lookup else None,
        )
        self._bus.publish(
            IvrFinished(
                node=self._node,
                linkedid=linkedid,
                flow=flow.name,
                outcome=result.outcome,
                queue=result.queue,
                attributes=dict(result.attributes),
                path=[step.as_dict() for step in result.path],
                inputs=dict(result.inputs),
                customer_id=result.customer.customer_id if result.customer else None,
                recordings=[r.path for r in result.recordings],
            )
        )
        voicemail = result.recording("voicemail")
        if voicemail is not None:
            self._bus.publish(
                self._follow_up(
                    arrived, result, (wait, ahead), kind="voicemail", recording=voicemail.path
                )
            )
        try:
            if result.outcome == "transfer":
                for name, value in sorted(result.attributes.items()):
                    await session.set_variable(f"CTI_ATTR_{name.upper()}", value)
                await session.set_variable("CTI_QUEUE", result.queue)
            elif result.outcome == "callback":
                self._bus.publish(self._follow_up(arrived, result, (wait, ahead)))
                await session.set_variable("CTI_ROUTE", "hangup")
            elif result.outcome == "hangup":
                await session.set_variable("CTI_ROUTE", "hangup")
        except (AgiHangup, CallerGone):
            log.info("call %s: caller gone as the IVR ended", linkedid)

    def _follow_up(
        self,
        arrived: CallArrived,
        result: IvrResult,
        place: tuple[float, int],
        kind: str = "callback",
        recording: str = "",
    ) -> CallbackRequested:
        """A caller to call back: they took a callback over waiting, or left a message. The
        place is the one they had when they called: the estimated wait and the callers ahead
        of them (-1: unknown), and the time they called, by which callbacks are due."""
        wait, ahead = place
        return CallbackRequested(
            node=self._node,
            linkedid=arrived.linkedid,
            caller_number=arrived.caller_number,
            queue=result.attributes.get("queue", self._default_queue),
            estimated_wait=wait,
            customer_id=result.customer.customer_id if result.customer else None,
            kind=kind,
            recording=recording,
            position=ahead + 1,
            joined_at=arrived.at,
        )

    async def walk_survey(self, session: CallSession, channel: Channel) -> None:
        """After the agent hung up: ask the caller to rate the call, once it was answered."""
        flow = self._flows.get(self._survey_flow) if self._flows and self._survey_flow else None
        if flow is None or self._engine is None:
            return
        if not await session.get_variable("${MEMBERNAME}"):
            return  # never reached an agent: nothing to rate
        linkedid = await session.get_variable("${CHANNEL(linkedid)}")
        language = await session.get_variable("${CHANNEL(language)}")
        result = await self._engine.run(
            flow, channel, session.env.get("agi_callerid", ""), language
        )
        score = result.attributes.get("score", "")
        comment = result.recording("comment")
        if score in {"1", "2", "3", "4", "5"}:
            self._bus.publish(
                SurveyAnswered(
                    node=self._node,
                    linkedid=linkedid,
                    score=int(score),
                    comment=comment.path if comment else "",
                )
            )


def callers_ahead(tracker: Tracker, node: str) -> Callable[[str], int]:
    """How many callers wait in a queue of ``node`` now: ahead of one who would join."""

    def count(queue: str) -> int:
        return len(tracker.waiting(node, queue))

    return count
