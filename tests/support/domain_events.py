"""Domain events as the tracker, the IVR and the complaint watch publish them, for tests that
drive a consumer through the bus without a PBX."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from cti_server.events import (
    AgentRinging,
    CallAnswered,
    CallArrived,
    CallEnded,
    CallQueued,
    CallTransferred,
    ComplaintDetected,
    HandoverKind,
    HungUpBy,
    IvrFinished,
    TranscriptPartial,
)

NODE = "pbx1"
CALLER = "+8613800000001"
CALLER_NAME = "Wang"
DIALED = "100"
_START = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)


def arrived(linkedid: str, caller: str = CALLER) -> CallArrived:
    return CallArrived(
        node=NODE,
        linkedid=linkedid,
        uniqueid=linkedid,
        channel="PJSIP/trunk-00000001",
        caller_number=caller,
        caller_name=CALLER_NAME,
        dialed=DIALED,
        at=_START,
    )


def ivr_finished(linkedid: str, customer_id: int | None, queue: str = "support") -> IvrFinished:
    return IvrFinished(
        node=NODE,
        linkedid=linkedid,
        flow="main",
        outcome="transfer",
        queue=queue,
        attributes={"queue": queue},
        path=[],
        inputs={},
        customer_id=customer_id,
        at=_START + timedelta(seconds=5),
    )


def queued(linkedid: str, queue: str = "support") -> CallQueued:
    return CallQueued(node=NODE, linkedid=linkedid, queue=queue, position=1)


def ringing(linkedid: str, agent: str, queue: str = "support") -> AgentRinging:
    return AgentRinging(
        node=NODE,
        linkedid=linkedid,
        queue=queue,
        agent=agent,
        caller_number=CALLER,
        caller_name=CALLER_NAME,
    )


def answered(linkedid: str, agent: str, queue: str = "support") -> CallAnswered:
    return CallAnswered(node=NODE, linkedid=linkedid, queue=queue, agent=agent, waited_seconds=3)


def ended(
    linkedid: str,
    agent: str,
    queue: str = "support",
    *,
    node: str = NODE,
    caller: str = CALLER,
    caller_name: str = CALLER_NAME,
    hung_up_by: HungUpBy = "caller",
    arrived_at: datetime = _START,
    queued_after: float = 5,
    offered_after: float = 6,
    answered_after: float = 8,
    ended_after: float | None = None,
) -> CallEnded:
    """An answered call's end as the tracker publishes it; its times are seconds after the
    arrival (``ended_after`` None: the event is stamped now, as a live one is)."""

    def after(seconds: float) -> datetime:
        return arrived_at + timedelta(seconds=seconds)

    event = CallEnded(
        node=node,
        linkedid=linkedid,
        outcome="answered",
        hung_up_by=hung_up_by,
        caller_number=caller,
        caller_name=caller_name,
        dialed=DIALED,
        queue=queue,
        agent=agent,
        arrived_at=arrived_at,
        queued_at=after(queued_after),
        offered_at=after(offered_after),
        answered_at=after(answered_after),
    )
    return event if ended_after is None else replace(event, at=after(ended_after))


def transferred(
    linkedid: str,
    from_agent: str,
    to_agent: str,
    kind: HandoverKind = "attended",
    queue: str = "support",
    *,
    caller_name: str = CALLER_NAME,
) -> CallTransferred:
    """The tracker's hand-over from the phone of ``from_agent`` to that of ``to_agent``
    (queue member names such as ``agent-1001``; a phone that is no queue member: ``PJSIP/1003``,
    whose agent name is then empty)."""

    def party(who: str) -> tuple[str, str, str]:
        extension = who.rsplit("-", 1)[-1].rsplit("/", 1)[-1]
        return f"PJSIP/{extension}", extension, "" if who.startswith("PJSIP/") else who

    from_party, from_extension, from_member = party(from_agent)
    to_party, to_extension, to_member = party(to_agent)
    return CallTransferred(
        node=NODE,
        linkedid=linkedid,
        kind=kind,
        from_party=from_party,
        from_extension=from_extension,
        from_agent=from_member,
        to_party=to_party,
        to_extension=to_extension,
        to_agent=to_member,
        by=from_party,
        caller_number=CALLER,
        caller_name=caller_name,
        queue=queue,
        customer_channel="PJSIP/trunk-00000001",
        party_channel=f"{to_party}-00000009",
        segment=1,
    )


def said(linkedid: str, speaker: str, text: str, start: float = 0.0) -> TranscriptPartial:
    """A finished utterance of the live transcript, as the transcription service publishes it."""
    return TranscriptPartial(
        node=NODE,
        linkedid=linkedid,
        speaker=speaker,
        text=text,
        final=True,
        start=start,
        end=start + 2.0,
    )


def complaint(linkedid: str, *, during_call: bool = False) -> ComplaintDetected:
    return ComplaintDetected(
        node=NODE,
        linkedid=linkedid,
        probability=0.91,
        threshold=0.5,
        category="billing",
        severity="high",
        language="en",
        evidence=[
            {
                "kind": "cue",
                "cue": "charged_twice",
                "weight": 1.2,
                "segment": 0,
                "char_start": 4,
                "char_end": 22,
                "start": 1.5,
                "end": 3.0,
                "text": "you charged me twice",
            }
        ],
        during_call=during_call,
    )
