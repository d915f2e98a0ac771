"""ORM rows to the API's response models (crm_core.schemas): what the API shows of each record.

Rows are validated into the models, so a value the document does not allow (a tier no policy
knows, a naive time) fails here, loudly, instead of reaching a client generated from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from crm_core.models import (
    ComplaintCase,
    Customer,
    FollowUp,
    Interaction,
    InteractionParty,
    MergeAudit,
    Phone,
    TranscriptSegment,
    User,
)
from crm_core.schemas import (
    CaseOut,
    CustomerOut,
    FollowUpOut,
    InteractionDetailOut,
    InteractionOut,
    IvrStepOut,
    MergeOut,
    PartyOut,
    PhoneOut,
    SegmentOut,
    UserOut,
    ValueOut,
)


def phone(row: Phone) -> PhoneOut:
    return PhoneOut.model_validate({"id": row.id, "number": row.e164, "label": row.label})


def customer(row: Customer) -> CustomerOut:
    return CustomerOut.model_validate(
        {
            "id": row.id,
            "kind": row.kind,
            "name": row.name,
            "organisation_id": row.organisation_id,
            "account_number": row.account_number,
            "language": row.language,
            "phones": [phone(p) for p in row.phones],
            "emails": [e.address for e in row.emails],
            "tags": row.tags,
            "consent": row.consent,
            "notes": row.notes,
            "value": value(row),
            "created_at": row.created_at,
        }
    )


def value(row: Customer) -> ValueOut:
    return ValueOut.model_validate(
        {
            "tier": row.tier,
            "tier_override": row.tier_override,
            "reason": row.tier_reason,
            "recency": row.recency_score,
            "frequency": row.frequency_score,
            "monetary": row.monetary_score,
            "lifetime_value": row.lifetime_value,
        }
    )


def interaction(row: Interaction, parties: Sequence[InteractionParty]) -> InteractionOut:
    """The row with its chain (:func:`crm_core.interactions.parties_of`), in order."""
    fields = {name: getattr(row, name) for name in InteractionOut.model_fields if name != "parties"}
    return InteractionOut.model_validate(
        {**fields, "ivr_path": ivr_path(row.ivr_path), "parties": [party(p) for p in parties]}
    )


def party(row: InteractionParty) -> PartyOut:
    return PartyOut.model_validate(row, from_attributes=True)


def ivr_path(steps: list[Any]) -> list[IvrStepOut]:
    """The steps as one shape: the recorder writes step records, the demo seed (and rows
    written before it) only the steps' names."""
    return [
        IvrStepOut.model_validate(step if isinstance(step, dict) else {"step": str(step)})
        for step in steps
    ]


def interaction_detail(
    row: Interaction,
    parties: Sequence[InteractionParty],
    segments: list[TranscriptSegment],
) -> InteractionDetailOut:
    fields = interaction(row, parties).model_dump()
    return InteractionDetailOut.model_validate(
        {**fields, "segments": [segment(s) for s in segments]}
    )


def segment(row: TranscriptSegment) -> SegmentOut:
    return SegmentOut.model_validate(row, from_attributes=True)


def case(row: ComplaintCase) -> CaseOut:
    return CaseOut.model_validate(row, from_attributes=True)


def follow_up(row: FollowUp) -> FollowUpOut:
    return FollowUpOut.model_validate(row, from_attributes=True)


def user(row: User) -> UserOut:
    return UserOut.model_validate(
        {
            "id": row.id,
            "username": row.username,
            "display_name": row.display_name,
            "role": row.role,
            "extension": row.extension,
            "languages": row.languages,
            "active": row.active,
            "skills": {link.skill.name: link.level for link in row.skills},
        }
    )


def merge(row: MergeAudit) -> MergeOut:
    return MergeOut.model_validate(row, from_attributes=True)
