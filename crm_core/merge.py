"""Merging duplicate customers, keeping every interaction, and undoing a merge exactly.

The merged-away record is kept (hidden, ``merged_into_id`` set) and everything that pointed at it
is re-pointed at the survivor; the audit row lists what moved, so undo moves exactly that back.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.customers import get_customer
from crm_core.errors import Conflict, InvalidInput, NotFound
from crm_core.models import (
    ComplaintCase,
    Customer,
    Email,
    FollowUp,
    Interaction,
    MergeAudit,
    Phone,
    Transaction,
    utcnow,
)

# (key in the audit, model, column that names the customer)
_MOVABLE: tuple[tuple[str, Any, str], ...] = (
    ("interactions", Interaction, "customer_id"),
    ("transactions", Transaction, "customer_id"),
    ("cases", ComplaintCase, "customer_id"),
    ("follow_ups", FollowUp, "customer_id"),
    ("contacts", Customer, "organisation_id"),
)


async def _ids(session: AsyncSession, model: Any, column: str, customer_id: int) -> list[int]:
    result = await session.scalars(
        select(model.id).where(getattr(model, column) == customer_id).order_by(model.id)
    )
    return list(result)


async def _move(session: AsyncSession, model: Any, column: str, ids: list[int], to: int) -> None:
    if ids:
        await session.execute(update(model).where(model.id.in_(ids)).values({column: to}))


async def merge_customers(
    session: AsyncSession, survivor_id: int, merged_id: int, actor_id: int | None
) -> MergeAudit:
    """Fold ``merged_id`` into ``survivor_id``; returns the audit record that can undo it."""
    if survivor_id == merged_id:
        raise InvalidInput("a customer cannot be merged into itself")
    survivor = await get_customer(session, survivor_id)
    merged = await get_customer(session, merged_id)
    moved: dict[str, Any] = {}
    for key, model, column in _MOVABLE:
        ids = await _ids(session, model, column, merged_id)
        await _move(session, model, column, ids, survivor_id)
        moved[key] = ids
    have_phones = {p.e164 for p in survivor.phones}
    have_emails = {e.address for e in survivor.emails}
    moved["phones"] = [p.id for p in merged.phones if p.e164 not in have_phones]
    moved["emails"] = [e.id for e in merged.emails if e.address not in have_emails]
    await _move(session, Phone, "customer_id", moved["phones"], survivor_id)
    await _move(session, Email, "customer_id", moved["emails"], survivor_id)

    before = {
        "tags": list(survivor.tags),
        "language": survivor.language,
        "account_number": survivor.account_number,
        "notes": survivor.notes,
        "merged_account_number": merged.account_number,
    }
    survivor.tags = sorted(set(survivor.tags) | set(merged.tags))
    survivor.language = survivor.language or merged.language
    if merged.notes:
        survivor.notes = (survivor.notes + "\n" + merged.notes).strip()
    if survivor.account_number is None and merged.account_number is not None:
        account = merged.account_number
        merged.account_number = None
        await session.flush()  # the number is unique: free it before the survivor takes it
        survivor.account_number = account
    merged.merged_into_id = survivor_id
    audit = MergeAudit(
        survivor_id=survivor_id,
        merged_id=merged_id,
        performed_by=actor_id,
        moved=moved,
        survivor_before=before,
    )
    session.add(audit)
    await session.flush()
    session.expire(survivor)
    session.expire(merged)
    return audit


async def undo_merge(session: AsyncSession, audit_id: int) -> MergeAudit:
    """Put both records back as they were before the merge."""
    audit = await session.get(MergeAudit, audit_id)
    if audit is None:
        raise NotFound(f"merge {audit_id} does not exist")
    if audit.undone_at is not None:
        raise Conflict(f"merge {audit_id} was undone already")
    later = await session.scalar(
        select(MergeAudit.id).where(
            MergeAudit.id > audit.id,
            MergeAudit.undone_at.is_(None),
            (MergeAudit.survivor_id == audit.merged_id)
            | (MergeAudit.merged_id == audit.survivor_id),
        )
    )
    if later is not None:
        raise Conflict(f"undo merge {later} first: it depends on this one")
    survivor = await session.get(Customer, audit.survivor_id)
    merged = await session.get(Customer, audit.merged_id)
    if survivor is None or merged is None:
        raise NotFound(f"merge {audit_id}: a customer of it no longer exists")
    for key, model, column in _MOVABLE:
        await _move(session, model, column, audit.moved.get(key, []), audit.merged_id)
    await _move(session, Phone, "customer_id", audit.moved.get("phones", []), audit.merged_id)
    await _move(session, Email, "customer_id", audit.moved.get("emails", []), audit.merged_id)
    before = audit.survivor_before
    survivor.tags = before["tags"]
    survivor.language = before["language"]
    survivor.notes = before["notes"]
    if before["merged_account_number"] is not None:
        survivor.account_number = before["account_number"]
        await session.flush()
        merged.account_number = before["merged_account_number"]
    merged.merged_into_id = None
    audit.undone_at = utcnow()
    await session.flush()
    session.expire(survivor)
    session.expire(merged)
    return audit
