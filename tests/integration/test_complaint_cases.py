"""Complaints caught in a call's words: alerted during the call, worked as CRM cases after it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.models import ComplaintCase, ComplaintSignal, Customer, Interaction
from cti_server.bus import MemoryBus
from cti_server.complaints.detector import ComplaintDetector
from cti_server.complaints.watch import ComplaintWatch
from cti_server.events import (
    CallEnded,
    CallStarted,
    CallTranscribed,
    ComplaintDetected,
    DomainEvent,
    SurveyAnswered,
    TranscriptPartial,
)
from cti_server.recorder.recorder import Recorder
from cti_server.recorder.spool import Spool
from tests.support.domain_events import ended
from tests.support.waiting import poll_until

Sessions = async_sessionmaker[AsyncSession]
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
COMPLAINT = "this is the third time I am calling about this and honestly I had expected better"
CHAT = "thank you so much that solved my problem have a nice day"
CALLS = (("c1", "+8613900000001", COMPLAINT), ("c2", "+8613900000002", CHAT))


def _said(text: str, start: float) -> dict[str, object]:
    words = text.split()
    return {
        "speaker": "customer",
        "start": start,
        "end": start + len(words) * 0.3,
        "text": text,
        "confidence": 0.9,
        "words": [
            {"word": w, "start": start + i * 0.3, "end": start + i * 0.3 + 0.25}
            for i, w in enumerate(words)
        ],
    }


def _ended(linkedid: str, number: str) -> CallEnded:
    return ended(
        linkedid,
        "sim-1001",
        caller=number,
        caller_name="",
        arrived_at=T0,
        queued_after=10,
        offered_after=40,
        answered_after=42,
        ended_after=200,
    )


@pytest.mark.asyncio
async def test_a_polite_complaint_alerts_during_the_call_and_opens_a_case_after(
    crm: Sessions, tmp_path: Path
) -> None:
    bus = MemoryBus()
    seen: list[DomainEvent] = []
    bus.listen((ComplaintDetected,), seen.append)
    recorder = Recorder(bus, crm, Spool(tmp_path / "spool.jsonl"), region="CN")
    recorder_task = asyncio.create_task(recorder.run())
    watch = ComplaintWatch(bus, ComplaintDetector(embeddings=None))
    watch.attach()
    for linkedid, number, text in (
        ("c1", "+8613900000001", COMPLAINT),
        ("c2", "+8613900000002", CHAT),
    ):
        bus.publish(
            CallStarted(
                node="pbx1",
                linkedid=linkedid,
                caller_number=number,
                caller_name="",
                dialed="100",
                at=T0,
            )
        )
        bus.publish(
            TranscriptPartial(
                node="pbx1",
                linkedid=linkedid,
                speaker="customer",
                text=text,
                final=True,
                start=3.0,
                end=8.0,
            )
        )
    alerts = await poll_until(_found(seen, during_call=True), 20, what="an alert during the call")
    assert [a.linkedid for a in alerts] == ["c1"]

    bus.publish(SurveyAnswered(node="pbx1", linkedid="c1", score=2))
    for linkedid, number, text in (
        ("c1", "+8613900000001", COMPLAINT),
        ("c2", "+8613900000002", CHAT),
    ):
        bus.publish(_ended(linkedid, number))
        bus.publish(
            CallTranscribed(
                node="pbx1",
                linkedid=linkedid,
                language="en",
                mode="live",
                segments=[_said(text, 3.0)],
            )
        )
    after = await poll_until(_found(seen, during_call=False), 20, what="the finding")
    assert [a.linkedid for a in after] == ["c1"]
    finding = after[0]
    assert finding.evidence, "the evidence says why"
    assert any(e["start"] is not None and e["start"] >= 3.0 for e in finding.evidence)

    async def _case() -> ComplaintCase | None:
        async with crm() as session:
            return await session.scalar(select(ComplaintCase))

    case = await poll_until(_case, 20, what="the complaint case")
    async with crm() as session:
        signal = await session.scalar(select(ComplaintSignal))
        interaction = await session.get(Interaction, signal.interaction_id) if signal else None
        customer = await session.get(Customer, case.customer_id)
    assert signal is not None
    assert interaction is not None
    assert interaction.external_key == "pbx1:c1"
    assert case.status == "open"
    assert case.severity == finding.severity
    assert case.evidence == finding.evidence
    assert customer is not None  # a stranger who complains becomes a customer to call back
    assert customer.name == "Caller +8613900000001"
    await watch.close()
    recorder_task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await recorder_task


def _found(
    seen: list[DomainEvent], *, during_call: bool
) -> Callable[[], Awaitable[list[ComplaintDetected] | None]]:
    async def _check() -> list[ComplaintDetected] | None:
        hits = [
            e for e in seen if isinstance(e, ComplaintDetected) and e.during_call == during_call
        ]
        return hits or None

    return _check
