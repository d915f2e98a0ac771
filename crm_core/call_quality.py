"""How a call sounded to the agent's browser phone, and when that is poor audio.

The desk page reads WebRTC statistics during a call (jitter, packet loss, round-trip time, audio
levels) and sends their summary; it is stored on the interaction per extension (a transferred
call may have had two browser phones), and read back to flag agents whose calls sound bad.

What counts as poor, and why both rules are used:

- **The usual VoIP limits, one metric at a time**: packet loss above 3 %, jitter above 30 ms,
  round-trip time above 300 ms (150 ms one way, ITU-T G.114's limit for most conversations).
  Each names its cause in words a supervisor can act on ("packet loss": the agent's network).
- **An estimated MOS below 4.0** from the simplified ITU-T G.107 E-model the field uses
  (effective latency = RTT/2 + 2 x jitter + 10 ms; R = 93.2 minus the latency's impairment
  minus 2.5 per % lost; MOS from R as G.107 Annex B says): metrics each under their limit can
  still add up to a bad call. MOS 4.0 is R 80, where Annex B's "some users dissatisfied"
  begins. The more usual 3.6 (R 70, "many dissatisfied") would add nothing to the limits:
  with every metric just under its limit the model still gives 3.85.
- **No audio at all**, which no average shows: nothing received for 5 s or more (one-way audio,
  a NAT or firewall fault), or a microphone that stayed silent for 10 s or more.

A metric the browser could not measure (``null``: no RTCP report yet) adds no impairment.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.errors import InvalidInput
from crm_core.models import Interaction, InteractionParty

LOSS_LIMIT_PCT = 3.0
JITTER_LIMIT_MS = 30.0
RTT_LIMIT_MS = 300.0
POOR_MOS = 4.0
SILENCE = 0.001  # a mean audio level below this (about -60 dBFS) is no sound at all
NO_AUDIO_AFTER = 5.0  # seconds of a call with no packet received: one-way audio
SILENT_MIC_AFTER = 10.0  # seconds of a call with a silent microphone
RECENT_CALLS = 10  # an agent's latest measured calls the wallboard judges
FLAG_AT = 2  # poor calls among them that flag the agent: one can be the customer's line

PACKET_LOSS, JITTER, DELAY = "packet loss", "jitter", "delay"
NO_AUDIO, SILENT_MIC = "no audio received", "silent microphone"

Extension = Annotated[str, StringConstraints(pattern=r"^[0-9+*#]{1,16}$")]


def _not_negative(value: object) -> object:
    """RTP counts packets lost net of duplicates (RFC 3550): negative means none were lost."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return max(value, 0)
    return value


class CallQualityIn(BaseModel):
    """One browser phone's summary of a call so far (``final``: the call is over), as the desk
    page measured it; strict: a string where a number belongs is refused, not read."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    seconds: float = Field(ge=0, le=86400, allow_inf_nan=False)
    final: bool
    jitter_ms: float | None = Field(None, ge=0, le=60000, allow_inf_nan=False)
    packet_loss_pct: (
        Annotated[float, BeforeValidator(_not_negative), Field(le=100, allow_inf_nan=False)] | None
    ) = None
    rtt_ms: float | None = Field(None, ge=0, le=60000, allow_inf_nan=False)
    audio_level_in: float | None = Field(None, ge=0, le=1, allow_inf_nan=False)
    audio_level_out: float | None = Field(None, ge=0, le=1, allow_inf_nan=False)
    packets_received: int = Field(0, ge=0, le=10**10)
    packets_lost: Annotated[int, BeforeValidator(_not_negative), Field(le=10**10)] = 0

    def stored(self) -> dict[str, Any]:
        """The summary with its verdict, as the interaction keeps it."""
        verdict = judge(self)
        return {**self.model_dump(), "mos": verdict.mos, "problems": list(verdict.problems)}


def _impairments(jitter_ms: float, loss_pct: float, rtt_ms: float) -> tuple[float, float]:
    """What delay (with jitter, as the jitter buffer turns it into delay) and loss take off the
    E-model's best R of 93.2."""
    latency = rtt_ms / 2 + 2 * jitter_ms + 10.0
    delay = latency / 40 if latency < 160 else (latency - 120) / 10
    return delay, 2.5 * loss_pct


def estimated_mos(jitter_ms: float, loss_pct: float, rtt_ms: float) -> float:
    """The simplified E-model's mean opinion score, 1 (bad) to about 4.4 (the best a
    narrow-band call scores)."""
    r = min(max(93.2 - sum(_impairments(jitter_ms, loss_pct, rtt_ms)), 0.0), 100.0)
    return round(max(1.0, 1 + 0.035 * r + 7e-6 * r * (r - 60) * (100 - r)), 2)


@dataclass(frozen=True, slots=True)
class Verdict:
    """``problems``: what made the call poor, in words (none: it sounded fine)."""

    mos: float | None
    problems: tuple[str, ...] = ()

    @property
    def poor(self) -> bool:
        return bool(self.problems)


def judge(quality: CallQualityIn) -> Verdict:
    """Poor audio or not, and why (see the module's rules)."""
    problems: list[str] = []
    if quality.seconds >= NO_AUDIO_AFTER and quality.packets_received == 0:
        problems.append(NO_AUDIO)
    level_out = quality.audio_level_out
    if quality.seconds >= SILENT_MIC_AFTER and level_out is not None and level_out < SILENCE:
        problems.append(SILENT_MIC)
    measured = (quality.jitter_ms, quality.packet_loss_pct, quality.rtt_ms)
    if all(value is None for value in measured):
        return Verdict(None, tuple(problems))
    jitter, loss, rtt = (value or 0.0 for value in measured)
    mos = estimated_mos(jitter, loss, rtt)
    over = [
        name
        for name, value, limit in (
            (PACKET_LOSS, loss, LOSS_LIMIT_PCT),
            (JITTER, jitter, JITTER_LIMIT_MS),
            (DELAY, rtt, RTT_LIMIT_MS),
        )
        if value > limit
    ]
    if not over and mos < POOR_MOS:  # no one metric over its limit: name the larger share
        delay, lost = _impairments(jitter, loss, rtt)
        over = [PACKET_LOSS if lost >= delay else DELAY]
    return Verdict(mos, (*problems, *over))


@dataclass
class AgentAudio:
    """An agent's latest measured calls: how many, how many sounded poor, and why."""

    measured: int = 0
    poor: int = 0
    causes: Counter[str] = field(default_factory=Counter)

    def add(self, verdict: Verdict) -> None:
        self.measured += 1
        if verdict.poor:
            self.poor += 1
            self.causes.update(verdict.problems)

    @property
    def flagged(self) -> bool:
        return self.poor >= FLAG_AT

    @property
    def words(self) -> str:
        """``poor audio on 3 of 5 calls: packet loss`` (the most frequent causes first)."""
        if not self.poor:
            return f"good audio on {self.measured} {_calls(self.measured)}"
        top = self.causes.most_common()
        causes = [cause for cause, count in top if count == top[0][1]]
        return f"poor audio on {self.poor} of {self.measured} {_calls(self.measured)}: " + (
            ", ".join(causes)
        )


def _calls(count: int) -> str:
    return "call" if count == 1 else "calls"


def summary_fields(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored summary without its verdict: what :class:`CallQualityIn` reads."""
    return {name: stored[name] for name in CallQualityIn.model_fields if name in stored}


def audio_of(summaries: Iterable[dict[str, Any]]) -> AgentAudio:
    """The judgement of stored summaries (judged again: the rules may have changed since)."""
    audio = AgentAudio()
    for stored in summaries:
        audio.add(judge(CallQualityIn.model_validate(summary_fields(stored), strict=False)))
    return audio


async def audio_by_extension(
    session: AsyncSession, since: datetime, until: datetime, *, last: int = RECENT_CALLS
) -> dict[str, AgentAudio]:
    """Per extension, its latest ``last`` measured calls among those whose chain began in
    ``[since, until)`` (found through the parties' indexed start: a call is counted once it
    has ended and its chain is written)."""
    if since.tzinfo is None or until.tzinfo is None:
        raise InvalidInput("since and until need a timezone")
    calls = (
        select(
            InteractionParty.interaction_id.label("id"),
            func.min(InteractionParty.started_at).label("began"),
        )
        .where(InteractionParty.started_at >= since, InteractionParty.started_at < until)
        .group_by(InteractionParty.interaction_id)
        .subquery()
    )
    rows = await session.scalars(
        select(Interaction.quality)
        .join(calls, calls.c.id == Interaction.id)
        .where(Interaction.quality.is_not(None))
        .order_by(calls.c.began.desc(), Interaction.id.desc())
    )
    by_extension: dict[str, list[dict[str, Any]]] = {}
    for quality in rows:
        for extension, summary in (quality or {}).items():
            kept = by_extension.setdefault(extension, [])
            if len(kept) < last and isinstance(summary, dict):
                kept.append(summary)
    return {extension: audio_of(kept) for extension, kept in by_extension.items()}
