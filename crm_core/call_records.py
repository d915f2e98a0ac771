"""A call's interaction, written one update at a time as the telephony side sees the call: the
CRM's rules for what such an update means beside its fields.

- a milestone (arrived, queued, offered, answered) happens once: a later, approximate report
  of it (a resync) does not move it;
- the routing JSON holds the IVR's keys and the router's side by side, the quality JSON each
  browser phone's summary by extension: an update replaces only the keys it brings;
- a customer named by caller ID is the call's only while it has none (the IVR's identification
  stands);
- the agent is the user at the answering extension; each party of the call's chain is the user
  at its extension, else at the extension its agent's name gives;
- a callback request becomes a follow-up task, a complaint found in the call a case.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.call_quality import summary_fields
from crm_core.callbacks import CallbackRequest, callback_task
from crm_core.callers import agent_for_extension, customer_of_caller
from crm_core.cases import CaseSla
from crm_core.complaint_intake import Detection, case_from_detection
from crm_core.interactions import record_interaction
from crm_core.models import Interaction
from crm_core.schemas import InteractionIn, PartyIn, interaction_key
from crm_core.value import ValuePolicy

log = logging.getLogger(__name__)

MILESTONES = ("arrived_at", "queued_at", "offered_at", "answered_at")
_CHAIN = TypeAdapter(list[PartyIn])


@dataclass(frozen=True)
class CallUpdate:
    """What the telephony side saw of one call, in the CRM's words."""

    fields: dict[str, Any]
    """:class:`crm_core.schemas.InteractionIn`'s fields (``node`` and ``linkedid`` included);
    ``parties`` without their users."""
    caller_customer: int | None = None  # named by caller ID
    caller_number: str | None = None  # to look the customer up by (journals of old)
    answered_by: str | None = None  # the answering agent's extension
    party_agents: Sequence[str | None] = field(default=())
    """Per party of ``fields["parties"]``: the extension its agent's name gives, if its own
    extension names no user."""
    callback: CallbackRequest | None = None
    complaint: Detection | None = None


@dataclass(frozen=True)
class CallRules:
    region: str
    sla: CaseSla = field(default_factory=CaseSla)
    value: ValuePolicy = field(default_factory=ValuePolicy)


async def record_call(session: AsyncSession, update: CallUpdate, rules: CallRules) -> Interaction:
    """The update on its interaction, with what it implies beside it."""
    fields = dict(update.fields)
    key = interaction_key(str(fields["node"]), str(fields["linkedid"]))
    if update.caller_customer is not None or update.caller_number:
        customer = update.caller_customer
        if customer is None and update.caller_number:
            customer = await customer_of_caller(session, update.caller_number, rules.region)
        if customer is not None and not await _has_customer(session, key):
            fields["customer_id"] = customer
    if "routing" in fields:
        stored = await session.scalar(
            select(Interaction.routing).where(Interaction.external_key == key)
        )
        fields["routing"] = {**(stored or {}), **fields["routing"]}
    if "quality" in fields:
        kept = await session.scalar(
            select(Interaction.quality).where(Interaction.external_key == key)
        )
        earlier = {ext: summary_fields(summary) for ext, summary in (kept or {}).items()}
        fields["quality"] = {**earlier, **fields["quality"]}
    if update.answered_by:
        agent_id = await agent_for_extension(session, update.answered_by)
        if agent_id is not None:
            fields["agent_id"] = agent_id
    if "parties" in fields:
        fields["parties"] = await _parties(session, fields, update.party_agents)
    row = await record_interaction(  # recomputes the customer's value once it is known
        session, InteractionIn.model_validate(fields), keep_existing=MILESTONES, policy=rules.value
    )
    if update.callback is not None:
        await callback_task(session, row.id, update.callback, rules.region)
    if update.complaint is not None:
        await case_from_detection(session, row, update.complaint, rules.region, rules.sla)
    return row


async def _has_customer(session: AsyncSession, key: str) -> bool:
    customer_id = await session.scalar(
        select(Interaction.customer_id).where(Interaction.external_key == key)
    )
    return customer_id is not None


async def _parties(
    session: AsyncSession, fields: dict[str, Any], agents: Sequence[str | None]
) -> list[PartyIn] | None:
    """The chain with each party's user. A chain the schema refuses is left out, not the call:
    its other fields are written, and the refusal is logged."""
    found = []
    for number, party in enumerate(fields["parties"]):
        agent_id = await agent_for_extension(session, party.get("extension"))
        if agent_id is None and number < len(agents):
            agent_id = await agent_for_extension(session, agents[number])
        found.append({**party, "agent_id": agent_id})
    try:
        return _CHAIN.validate_python(found)
    except ValidationError as exc:
        log.warning(
            "the chain of interaction %s refused by the CRM schema; written without it: %s",
            fields["linkedid"],
            exc,
        )
        return None
