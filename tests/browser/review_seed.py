"""A complaint case as the pipeline leaves one, for the review page's tests: a customer, a call
with its transcript (hostile text in it), the detector's signal and the case it opened, and the
call's mix in a recordings folder. Also the review's application without Asterisk."""

from __future__ import annotations

import wave
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.cases import CaseSla, add_signal, open_case_from_signal
from crm_core.customers import create_customer
from crm_core.interactions import record_interaction
from crm_core.schemas import CustomerIn, InteractionIn
from cti_server.bus import MemoryBus
from cti_server.tracker.tracker import Tracker
from tests.support.ui_server import mounted, ui_deps

XSS = '"><svg/onload=alert(1)>'
NODE = "pbx1"
LINKEDID = "1700000000.7"
HOSTILE = f"this is the third time I call {XSS}<script>alert(2)</script> and nothing happened"
CUE = "third time"
EVIDENCE_START = 12.5  # seconds from the answer, as transcripts count
QUEUE_WAIT = 15.0  # recorded before the answer: the mix starts as the caller joins the queue
WAV_SECONDS = 40


@dataclass(frozen=True)
class SeededCase:
    case_id: int
    customer_id: int
    interaction_id: int


def write_wav(path: Path, seconds: int = WAV_SECONDS, rate: int = 8000) -> None:
    """Silence, as Asterisk's MixMonitor would write a quiet call (8 kHz, 16-bit, mono)."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\0\0" * rate * seconds)


async def seed_case(
    db: async_sessionmaker[AsyncSession],
    *,
    agent_id: int | None = None,
    linkedid: str = LINKEDID,
    category: str = "delivery",
    severity: str = "high",
    name: str = XSS,
    phone: str = "+8613900000077",
) -> SeededCase:
    """A post-call complaint stored by the recorder's own CRM calls; segments in the order the
    pipeline stores them (customer's, then agent's), so the evidence index is not the time
    order."""
    at = datetime.now(UTC) - timedelta(hours=1)
    lo = HOSTILE.index(CUE)
    async with db() as session, session.begin():
        customer = await create_customer(
            session, CustomerIn(name=name, phones=[{"number": phone}]), "CN"
        )
        interaction = await record_interaction(
            session,
            InteractionIn(
                node=NODE,
                linkedid=linkedid,
                customer_id=customer.id,
                arrived_at=at,
                queued_at=at + timedelta(seconds=5),
                answered_at=at + timedelta(seconds=5 + QUEUE_WAIT),
                ended_at=at + timedelta(seconds=60),
                queue="support",
                agent_id=agent_id,
                agent_name="agent-8101",
                segments=[
                    {
                        "speaker": "customer",
                        "start": 2.0,
                        "end": 4.0,
                        "text": "hello",
                        "confidence": 0.9,
                    },
                    {
                        "speaker": "customer",
                        "start": 11.0,
                        "end": 16.0,
                        "text": HOSTILE,
                        "confidence": 0.8,
                    },
                    {
                        "speaker": "agent",
                        "start": 5.0,
                        "end": 9.0,
                        "text": "how can I help you",
                        "confidence": 0.9,
                    },
                ],
            ),
        )
        signal = await add_signal(
            session,
            interaction_id=interaction.id,
            probability=0.91,
            category=category,
            severity=severity,
            evidence=[
                {
                    "kind": "cue",
                    "cue": f"repeat: {CUE}",
                    "weight": 1.2,
                    "segment": 1,
                    "char_start": lo,
                    "char_end": lo + len(CUE),
                    "start": EVIDENCE_START,
                    "end": EVIDENCE_START + 0.8,
                    "text": CUE,
                },
                {
                    "kind": "fact",
                    "cue": "repeat_call_same_topic_7d",
                    "weight": 0.8,
                    "segment": None,
                    "char_start": 0,
                    "char_end": 0,
                    "start": None,
                    "end": None,
                    "text": "",
                },
            ],
        )
        case = await open_case_from_signal(session, signal.id, CaseSla())
        return SeededCase(case.id, customer.id, interaction.id)


def review_app(
    db: async_sessionmaker[AsyncSession], recordings: Path | None
) -> tuple[web.Application, MemoryBus]:
    """``/ui`` alone with the recordings folder given, a bus of its own, and an AMI link that
    never connects."""
    bus = MemoryBus()
    deps = ui_deps(db, bus, Tracker(bus.publish), transfer_queues=(), recordings_path=recordings)
    return mounted(deps), bus
