"""ORM rows to JSON-ready dicts: what the API shows of each record."""

from __future__ import annotations

from typing import Any

from crm_core.models import (
    ComplaintCase,
    Customer,
    FollowUp,
    Interaction,
    MergeAudit,
    TranscriptSegment,
    User,
)


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def customer(row: Customer) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "name": row.name,
        "organisation_id": row.organisation_id,
        "account_number": row.account_number,
        "language": row.language,
        "phones": [{"id": p.id, "number": p.e164, "label": p.label} for p in row.phones],
        "emails": [e.address for e in row.emails],
        "tags": row.tags,
        "consent": row.consent,
        "notes": row.notes,
        "value": value(row),
        "created_at": _iso(row.created_at),
    }


def value(row: Customer) -> dict[str, Any]:
    return {
        "tier": row.tier,
        "tier_override": row.tier_override,
        "reason": row.tier_reason,
        "recency": row.recency_score,
        "frequency": row.frequency_score,
        "monetary": row.monetary_score,
        "lifetime_value": str(row.lifetime_value),
    }


def interaction(row: Interaction) -> dict[str, Any]:
    return {
        "id": row.id,
        "external_key": row.external_key,
        "customer_id": row.customer_id,
        "kind": row.kind,
        "caller_number": row.caller_number,
        "caller_name": row.caller_name,
        "dialed": row.dialed,
        **{
            name: _iso(getattr(row, name))
            for name in ("arrived_at", "queued_at", "offered_at", "answered_at", "ended_at")
        },
        "queue": row.queue,
        "agent_id": row.agent_id,
        "agent_name": row.agent_name,
        "ended_by": row.ended_by,
        "ivr_path": row.ivr_path,
        "ivr_inputs": row.ivr_inputs,
        "routing": row.routing,
        "disposition": row.disposition,
        "notes": row.notes,
        "recordings": row.recordings,
        "survey_score": row.survey_score,
    }


def segment(row: TranscriptSegment) -> dict[str, Any]:
    return {
        "speaker": row.speaker,
        "start": row.start,
        "end": row.end,
        "text": row.text,
        "confidence": row.confidence,
    }


def case(row: ComplaintCase) -> dict[str, Any]:
    return {
        "id": row.id,
        "customer_id": row.customer_id,
        "category": row.category,
        "severity": row.severity,
        "status": row.status,
        "summary": row.summary,
        "owner_id": row.owner_id,
        **{
            name: _iso(getattr(row, name))
            for name in ("opened_at", "assigned_at", "resolved_at", "closed_at", "due_at")
        },
        "evidence": row.evidence,
    }


def follow_up(row: FollowUp) -> dict[str, Any]:
    return {
        "id": row.id,
        "customer_id": row.customer_id,
        "interaction_id": row.interaction_id,
        "kind": row.kind,
        "due_at": _iso(row.due_at),
        "owner_id": row.owner_id,
        "status": row.status,
        "note": row.note,
    }


def user(row: User) -> dict[str, Any]:
    return {
        "id": row.id,
        "username": row.username,
        "display_name": row.display_name,
        "role": row.role,
        "extension": row.extension,
        "languages": row.languages,
        "active": row.active,
        "skills": {link.skill.name: link.level for link in row.skills},
    }


def merge(row: MergeAudit) -> dict[str, Any]:
    return {
        "id": row.id,
        "survivor_id": row.survivor_id,
        "merged_id": row.merged_id,
        "performed_by": row.performed_by,
        "performed_at": _iso(row.performed_at),
        "moved": row.moved,
        "undone_at": _iso(row.undone_at),
    }
