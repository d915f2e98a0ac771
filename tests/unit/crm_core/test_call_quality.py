"""When a browser phone's call counts as poor audio, and what a supervisor reads about it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.call_quality import (
    DELAY,
    JITTER,
    NO_AUDIO,
    PACKET_LOSS,
    SILENT_MIC,
    CallQualityIn,
    audio_by_extension,
    audio_of,
    estimated_mos,
    judge,
    summary_fields,
)
from crm_core.interactions import record_interaction
from crm_core.schemas import InteractionIn

CLEAN: dict[str, Any] = {
    "seconds": 95.0,
    "final": True,
    "jitter_ms": 4.0,
    "packet_loss_pct": 0.0,
    "rtt_ms": 40.0,
    "audio_level_in": 0.2,
    "audio_level_out": 0.1,
    "packets_received": 4750,
    "packets_lost": 0,
}


def _quality(**changes: Any) -> CallQualityIn:
    return CallQualityIn.model_validate({**CLEAN, **changes})


def test_the_e_model_scores_a_clean_call_near_the_top_and_falls_with_loss_and_delay() -> None:
    best = estimated_mos(0, 0, 0)
    assert 4.3 <= best <= 4.5
    assert estimated_mos(4, 0, 40) > 4.3
    # about 10 % lost, or 400 ms each way, is where "many users are dissatisfied" (R < 70)
    assert estimated_mos(0, 10, 0) < 3.6 < estimated_mos(0, 8, 0)
    assert estimated_mos(0, 0, 800) < 3.6 < estimated_mos(0, 0, 500)
    assert estimated_mos(0, 100, 0) == 1.0


def test_a_clean_call_is_not_poor() -> None:
    verdict = judge(_quality())
    assert not verdict.poor
    assert verdict.mos is not None
    assert verdict.mos > 4.3


@pytest.mark.parametrize(
    ("changes", "problems"),
    [
        ({"packet_loss_pct": 4.0}, (PACKET_LOSS,)),
        ({"jitter_ms": 45.0}, (JITTER,)),
        ({"rtt_ms": 350.0}, (DELAY,)),
        ({"packet_loss_pct": 5.0, "jitter_ms": 40.0}, (PACKET_LOSS, JITTER)),
        # each under its limit, together a poor call: the larger share is named
        ({"packet_loss_pct": 2.9, "jitter_ms": 29.0, "rtt_ms": 290.0}, None),
        ({"packets_received": 0, "audio_level_in": 0.0}, (NO_AUDIO,)),
        ({"audio_level_out": 0.0}, (SILENT_MIC,)),
    ],
)
def test_a_poor_call_names_its_cause(changes: dict[str, Any], problems: tuple[str] | None) -> None:
    verdict = judge(_quality(**changes))
    assert verdict.poor
    if problems is None:
        assert verdict.mos is not None
        assert verdict.mos < 4.0
        assert len(verdict.problems) == 1
        assert verdict.problems[0] in (PACKET_LOSS, DELAY)
    else:
        assert verdict.problems == problems


def test_a_short_call_or_one_not_yet_measured_is_not_blamed() -> None:
    assert not judge(_quality(seconds=3.0, packets_received=0, audio_level_out=0.0)).poor
    unmeasured = judge(_quality(jitter_ms=None, packet_loss_pct=None, rtt_ms=None))
    assert unmeasured.mos is None
    assert not unmeasured.poor
    # RTT not reported yet (no RTCP report): the others still count
    assert judge(_quality(rtt_ms=None, packet_loss_pct=6.0)).problems == (PACKET_LOSS,)


def test_rtp_negative_loss_means_none_lost() -> None:
    quality = _quality(packets_lost=-3, packet_loss_pct=-0.1)
    assert (quality.packets_lost, quality.packet_loss_pct) == (0, 0.0)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"seconds": "95"}, "seconds"),
        ({"seconds": -1.0}, "seconds"),
        ({"final": "yes"}, "final"),
        ({"packet_loss_pct": 101.0}, "packet_loss_pct"),
        ({"audio_level_in": 1.5}, "audio_level_in"),
        ({"jitter_ms": float("nan")}, "jitter_ms"),
        ({"packets_received": 1.5}, "packets_received"),
        ({"mos": 4.0}, "mos"),
    ],
)
def test_a_bad_summary_is_refused_naming_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        _quality(**changes)
    assert refused.value.errors()[0]["loc"] == (field,)


def test_an_agent_is_described_in_words_and_flagged_from_two_poor_calls() -> None:
    lossy = _quality(packet_loss_pct=6.0).stored()
    jittery = _quality(jitter_ms=60.0).stored()
    clean = _quality().stored()
    assert lossy["problems"] == [PACKET_LOSS]
    assert lossy["mos"] < 4.3

    audio = audio_of([lossy, lossy, jittery, clean, clean])
    assert audio.flagged
    assert audio.words == "poor audio on 3 of 5 calls: packet loss"

    once = audio_of([lossy, clean, clean])
    assert not once.flagged, "one poor call can be the customer's line"
    assert once.words == "poor audio on 1 of 3 calls: packet loss"
    assert audio_of([clean]).words == "good audio on 1 call"
    assert audio_of([lossy, jittery]).words == "poor audio on 2 of 2 calls: packet loss, jitter"


@pytest.mark.asyncio
async def test_the_latest_measured_calls_of_the_day_are_read_per_extension(
    crm: async_sessionmaker[AsyncSession],
) -> None:
    """In both databases: the quality JSON is read through the day's call chains, latest first,
    at most ``last`` per extension; a call measured by nobody, or on another day, is not."""
    day = datetime(2026, 12, 7, tzinfo=UTC)
    calls = [
        ("q1", day + timedelta(hours=9), {"8101": _quality(packet_loss_pct=6.0).stored()}),
        ("q2", day + timedelta(hours=10), {"8101": _quality().stored()}),
        ("q3", day + timedelta(hours=11), {"8101": _quality(jitter_ms=50.0).stored()}),
        ("q4", day + timedelta(hours=12), None),
        ("q5", day - timedelta(hours=1), {"8102": _quality(packet_loss_pct=9.0).stored()}),
    ]
    async with crm() as session, session.begin():
        for linkedid, began, quality in calls:
            fields: dict[str, Any] = {
                "node": "pbx1",
                "linkedid": linkedid,
                "answered_at": began,
                "parties": [
                    {"party": "PJSIP/8101", "how": "answer", "started_at": began, "seconds": 9.0}
                ],
            }
            if quality is not None:
                fields["quality"] = {ext: summary_fields(s) for ext, s in quality.items()}
            await record_interaction(session, InteractionIn.model_validate(fields))
    async with crm() as session:
        today = await audio_by_extension(session, day, day + timedelta(days=1))
        latest = await audio_by_extension(session, day, day + timedelta(days=1), last=2)
    assert set(today) == {"8101"}
    assert today["8101"].words == "poor audio on 2 of 3 calls: jitter, packet loss"
    assert latest["8101"].words == "poor audio on 1 of 2 calls: jitter"
