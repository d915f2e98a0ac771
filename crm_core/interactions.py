"""Interactions: every contact, written idempotently by (Asterisk node, linkedid).

A call is written several times as it progresses (arrived, queued, answered, ended, wrapped up);
each write updates the one row for that call with the fields it brings, never adds a second row.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.errors import InvalidInput, NotFound
from crm_core.models import (
    CaseInteraction,
    ComplaintSignal,
    Customer,
    FollowUp,
    Interaction,
    InteractionParty,
    TranscriptSegment,
    User,
    utcnow,
)
from crm_core.schemas import InteractionIn, PartyIn, interaction_key
from crm_core.valuation import recompute_value
from crm_core.value import ValuePolicy

_SECRET_KEY = re.compile(r"pin|pass|secret|cvv|cvc|card|otp|token", re.IGNORECASE)
MASK = "***"


def mask_secrets(inputs: dict[str, str]) -> dict[str, str]:
    """IVR inputs whose name says they are secret are never stored, whoever forgot to mask."""
    return {key: (MASK if _SECRET_KEY.search(key) else value) for key, value in inputs.items()}


_ROW_FIELDS = (
    "kind",
    "customer_id",
    "caller_number",
    "caller_name",
    "dialed",
    "arrived_at",
    "queued_at",
    "offered_at",
    "answered_at",
    "ended_at",
    "queue",
    "agent_id",
    "agent_name",
    "ended_by",
    "ivr_path",
    "ivr_inputs",
    "routing",
    "disposition",
    "notes",
    "recordings",
    "survey_score",
    "quality",
)


async def record_interaction(
    session: AsyncSession,
    data: InteractionIn,
    keep_existing: Collection[str] = (),
    *,
    policy: ValuePolicy | None = None,
) -> Interaction:
    """Insert or update the interaction ``node:linkedid`` with the fields ``data`` carries.

    Fields named in ``keep_existing`` are only filled when still empty: a milestone such as
    ``arrived_at`` happens once, and a later, approximate report of it must not move it.
    The customer and agent it names must exist (SQLite may not enforce foreign keys).
    With a ``policy``, a write that names the customer recomputes the customer's value (its
    recency is as of now): the REST API and the recorder both write through here.
    """
    await _check_references(session, data)
    values: dict[str, Any] = {
        name: getattr(data, name) for name in _ROW_FIELDS if getattr(data, name) is not None
    }
    if "ivr_path" in values:
        values["ivr_path"] = [step.model_dump() for step in values["ivr_path"]]
    if "ivr_inputs" in values:
        values["ivr_inputs"] = mask_secrets(values["ivr_inputs"])
    if "quality" in values:
        values["quality"] = {ext: summary.stored() for ext, summary in values["quality"].items()}
    values["updated_at"] = utcnow()
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(Interaction).values(
        external_key=data.external_key, **{"kind": "inbound_call", **values}
    )
    updates: dict[str, Any] = {
        name: (
            func.coalesce(getattr(Interaction, name), getattr(statement.excluded, name))
            if name in keep_existing
            else value
        )
        for name, value in values.items()
    }
    statement = statement.on_conflict_do_update(index_elements=["external_key"], set_=updates)
    await session.execute(statement)
    interaction = await session.scalar(
        select(Interaction)
        .where(Interaction.external_key == data.external_key)
        .execution_options(populate_existing=True)
    )
    assert interaction is not None
    _keep_milestones_in_order(interaction)
    if data.segments is not None:
        await session.execute(
            delete(TranscriptSegment).where(TranscriptSegment.interaction_id == interaction.id)
        )
        session.add_all(
            TranscriptSegment(interaction_id=interaction.id, **segment.model_dump())
            for segment in data.segments
        )
        await session.flush()
    if data.parties is not None:
        await _replace_parties(session, interaction.id, data.parties)
    if policy is not None and data.customer_id is not None:
        await recompute_value(session, data.customer_id, policy)
    return interaction


async def _replace_parties(
    session: AsyncSession, interaction_id: int, parties: Sequence[PartyIn]
) -> None:
    """The call's chain as last reported: the rows before it go, so a replayed ``CallEnded``
    (a spool re-delivery, a resync) leaves one row per party, never two."""
    await session.execute(
        delete(InteractionParty).where(InteractionParty.interaction_id == interaction_id)
    )
    await session.flush()  # the old positions are free before the new rows take them
    session.add_all(
        InteractionParty(interaction_id=interaction_id, position=position, **party.model_dump())
        for position, party in enumerate(parties)
    )
    await session.flush()


async def _check_references(session: AsyncSession, data: InteractionIn) -> None:
    if data.customer_id is not None:
        found = await session.scalar(select(Customer.id).where(Customer.id == data.customer_id))
        if found is None:
            raise NotFound(f"customer {data.customer_id} does not exist")
    if data.agent_id is not None:
        found = await session.scalar(select(User.id).where(User.id == data.agent_id))
        if found is None:
            raise InvalidInput(f"agent_id: no user {data.agent_id}")
    named = {party.agent_id for party in data.parties or () if party.agent_id is not None}
    if named:
        known = set(await session.scalars(select(User.id).where(User.id.in_(named))))
        for position, party in enumerate(data.parties or ()):
            if party.agent_id is not None and party.agent_id not in known:
                raise InvalidInput(f"parties.{position}.agent_id: no user {party.agent_id}")


_MILESTONE_ORDER = ("arrived_at", "queued_at", "offered_at", "answered_at", "ended_at")


def _keep_milestones_in_order(interaction: Interaction) -> None:
    """A milestone never comes before the one it follows.

    Reports rebuilt after a restart are whole-second estimates (Asterisk's ``Wait`` and
    ``Duration``) and can land up to a second before a precise milestone already stored;
    such an estimate is moved up to the milestone before it, never the stored one back.
    """
    latest: datetime | None = None
    for name in _MILESTONE_ORDER:
        value = getattr(interaction, name)
        if value is None:
            continue
        if latest is not None and value < latest:
            setattr(interaction, name, latest)
        else:
            latest = value


async def end_unseen(
    session: AsyncSession, node: str, live: Collection[str], seen_at: datetime
) -> list[str]:
    """Close the interactions of ``node`` still open that Asterisk no longer had at
    ``seen_at``: they ended while no CTI server was listening (killed, restarting), and would
    otherwise stay open for ever. Their end is put at ``seen_at``, the first moment known to be
    after it, and ``routing.end_unseen`` says so; what is not known (an answer nobody saw) is
    left empty, never guessed. Returns the linkedids closed."""
    still_live = set(live)
    rows = (
        await session.scalars(
            select(Interaction).where(
                Interaction.external_key.startswith(interaction_key(node, ""), autoescape=True),
                Interaction.ended_at.is_(None),
                Interaction.arrived_at < seen_at,
            )
        )
    ).all()
    closed = []
    for row in rows:
        linkedid = row.external_key.removeprefix(interaction_key(node, ""))
        if linkedid in still_live:
            continue
        row.ended_at = seen_at
        row.routing = {**(row.routing or {}), "end_unseen": True}
        row.updated_at = utcnow()
        closed.append(linkedid)
    return closed


async def forget_merged(session: AsyncSession, node: str, linkedid: str, into: str) -> bool:
    """A call that was no call of its own goes: the channel of a phone that picked up a
    colleague's ringing call became part of that call (``into``), which holds the conversation.
    If something already refers to it (a case, a follow-up, a rating), it stays, marked
    ``routing.merged_into``. True if it went."""
    row = await find_interaction(session, node, linkedid)
    if row is None:
        return False
    referrers = (
        select(CaseInteraction.interaction_id).where(CaseInteraction.interaction_id == row.id),
        select(FollowUp.id).where(FollowUp.interaction_id == row.id),
        select(Interaction.id).where(Interaction.rates_interaction_id == row.id),
    )
    referred = [await session.scalar(query.limit(1)) for query in referrers]
    if any(found is not None for found in referred):
        row.routing = {**(row.routing or {}), "merged_into": into}
        row.updated_at = utcnow()
        return False
    for table in (InteractionParty, TranscriptSegment, ComplaintSignal):
        await session.execute(delete(table).where(table.interaction_id == row.id))
    await session.delete(row)
    return True


async def get_interaction(session: AsyncSession, interaction_id: int) -> Interaction:
    interaction = await session.get(Interaction, interaction_id)
    if interaction is None:
        raise NotFound(f"interaction {interaction_id} does not exist")
    return interaction


async def find_interaction(session: AsyncSession, node: str, linkedid: str) -> Interaction | None:
    return await session.scalar(
        select(Interaction).where(Interaction.external_key == interaction_key(node, linkedid))
    )


async def timeline(
    session: AsyncSession,
    customer_id: int,
    limit: int = 50,
    offset: int = 0,
    *,
    where: ColumnElement[bool] | None = None,
) -> list[Interaction]:
    """The customer's contacts, newest first; ``where`` keeps only those the reader may see
    (:func:`crm_core.access.interactions_visible`)."""
    query = select(Interaction).where(Interaction.customer_id == customer_id)
    if where is not None:
        query = query.where(where)
    result = await session.scalars(
        query.order_by(Interaction.arrived_at.desc().nulls_last(), Interaction.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(result)


async def segments_of(session: AsyncSession, interaction_id: int) -> list[TranscriptSegment]:
    result = await session.scalars(
        select(TranscriptSegment)
        .where(TranscriptSegment.interaction_id == interaction_id)
        .order_by(TranscriptSegment.start)
    )
    return list(result)


async def parties_of(
    session: AsyncSession, interaction_ids: Collection[int]
) -> dict[int, list[InteractionParty]]:
    """Each interaction's chain, in order (an interaction nobody answered has none)."""
    chains: dict[int, list[InteractionParty]] = {key: [] for key in interaction_ids}
    if not chains:
        return chains
    rows = await session.scalars(
        select(InteractionParty)
        .where(InteractionParty.interaction_id.in_(chains))
        .order_by(InteractionParty.interaction_id, InteractionParty.position)
    )
    for row in rows:
        chains[row.interaction_id].append(row)
    return chains


async def repeat_contact(session: AsyncSession, external_key: str, days: float = 7.0) -> bool:
    """Did this interaction's customer contact us about the same topic (the IVR's intent)
    within ``days`` before it? A third call about one thing is itself a sign of trouble."""
    row = await session.scalar(select(Interaction).where(Interaction.external_key == external_key))
    if row is None or row.customer_id is None or row.arrived_at is None:
        return False
    intent = (row.routing or {}).get("attributes", {}).get("intent")
    earlier = await session.scalars(
        select(Interaction).where(
            Interaction.customer_id == row.customer_id,
            Interaction.id != row.id,
            Interaction.arrived_at >= row.arrived_at - timedelta(days=days),
            Interaction.arrived_at < row.arrived_at,
        )
    )
    return any(
        intent is None or (other.routing or {}).get("attributes", {}).get("intent") == intent
        for other in earlier
    )
