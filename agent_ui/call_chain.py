"""A call's chain as the customer page tells it: who had the customer, for how long, and how
each hand-over happened ("answered by Li Na (1001) 2:10 → attended transfer by 1001 → Wang Wei
(1002) 1:05").

Plain text pieces only: the template escapes them, so a name holding markup shows as text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.interactions import parties_of
from crm_core.models import Interaction, InteractionParty, User

_HAND_OVER = {
    "answer": "answered",
    "attended": "attended transfer",
    "blind": "blind transfer",
    "blonde": "blonde transfer",
    "pickup": "picked up",
    "forward": "forwarded",
    "redirect": "redirected",
    "park": "parked",
}
_DEVICE_EXTENSION = re.compile(r"^[A-Za-z0-9_]+/(\d{2,10})$")


@dataclass(frozen=True, slots=True)
class ChainStep:
    """One party: how they got the customer (``hand_over``), who they are, for how long."""

    hand_over: str
    who: str
    duration: str


def duration(seconds: float) -> str:
    """``2:10``; ``1:02:03`` past the hour."""
    minutes, second = divmod(round(seconds), 60)
    hours, minute = divmod(minutes, 60)
    return f"{hours}:{minute:02d}:{second:02d}" if hours else f"{minute}:{second:02d}"


def chain_steps(parties: Sequence[InteractionParty], names: Mapping[int, str]) -> list[ChainStep]:
    """The chain's steps, in order; ``names`` are the CRM users' display names by id."""
    extensions = {p.party: p.extension for p in parties if p.extension}
    steps: list[ChainStep] = []
    for party in parties:
        name = names.get(party.agent_id) if party.agent_id is not None else None
        name = name or party.agent_name
        if name and party.extension and name != party.extension:
            who = f"{name} ({party.extension})"
        else:
            who = name or party.extension or party.party
        steps.append(
            ChainStep(_hand_over(party, extensions, first=not steps), who, duration(party.seconds))
        )
    return steps


def _hand_over(
    party: InteractionParty, extensions: Mapping[str, str | None], *, first: bool
) -> str:
    """How the party got the customer, read before their name: ``answered by``, ``picked up
    by``; a first party reached otherwise (a forwarding phone) ``forwarded by 1002 to``; a
    later one ``attended transfer by 1001``, ``parked by 1001`` (the arrow leads to them)."""
    label = _HAND_OVER.get(party.how, party.how)
    if party.how == "answer" or (party.how == "pickup" and first):
        return f"{label} by"
    if party.how == "pickup":
        return label  # by the phone the arrow leads to
    by = _short(party.by_party, extensions) if party.by_party else ""
    told = f"{label} by {by}" if by else label
    return f"{told} to" if first else told


def _short(device: str, extensions: Mapping[str, str | None]) -> str:
    """A device as people know it: its extension (``PJSIP/1001``: ``1001``), else its name."""
    known = extensions.get(device)
    if known:
        return known
    match = _DEVICE_EXTENSION.match(device)
    return match.group(1) if match else device


async def chains_of(
    session: AsyncSession, interactions: Sequence[Interaction]
) -> dict[int, list[ChainStep]]:
    """The chains worth showing of ``interactions``: those more than one party handled."""
    parties = await parties_of(session, [i.id for i in interactions])
    handed_over = {key: chain for key, chain in parties.items() if len(chain) > 1}
    ids = {p.agent_id for chain in handed_over.values() for p in chain if p.agent_id is not None}
    names: dict[int, str] = {}
    if ids:
        rows = await session.execute(select(User.id, User.display_name).where(User.id.in_(ids)))
        names = {user_id: name for user_id, name in rows}
    return {key: chain_steps(chain, names) for key, chain in handed_over.items()}
