"""Customers: create, change, find, and look up by the caller ID Asterisk delivers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy import bindparam, delete, func, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.dedup import CustomerRecord, DuplicateCandidate, duplicates_of, name_keys
from crm_core.errors import Conflict, InvalidInput, NotFound
from crm_core.models import Customer, CustomerNameKey, Email, Phone, utcnow
from crm_core.phones import PhoneNumberError, is_withheld, lookup_candidates, to_e164
from crm_core.schemas import CustomerIn, CustomerPatch, PhoneIn

LookupStatus = Literal["unknown", "found", "ambiguous"]


@dataclass(frozen=True)
class CallerMatch:
    """What a screen pop or the IVR needs first: read in the lookup's one query."""

    id: int
    name: str
    tier: str
    language: str | None


@dataclass(frozen=True)
class LookupResult:
    """Who is calling: nobody we know, exactly one customer, or several sharing the number."""

    status: LookupStatus
    number: str | None
    customers: list[CallerMatch] = field(default_factory=list)


def _e164(number: str, region: str, where: str) -> str:
    try:
        return to_e164(number, region)
    except PhoneNumberError as exc:
        raise InvalidInput(f"{where}: {exc}") from None


async def get_customer(session: AsyncSession, customer_id: int) -> Customer:
    """The live record; a merged-away record answers NotFound naming the survivor, a deleted
    one NotFound saying so."""
    customer = await session.get(Customer, customer_id)
    if customer is None:
        raise NotFound(f"customer {customer_id} does not exist")
    if customer.merged_into_id is not None:
        raise NotFound(f"customer {customer_id} was merged into {customer.merged_into_id}")
    if customer.deleted_at is not None:
        raise NotFound(f"customer {customer_id} was deleted")
    return customer


async def delete_customer(session: AsyncSession, customer_id: int) -> Customer:
    """Soft deletion: lookup, search and duplicates no longer find the customer, but the
    record stays, so that its interactions, cases and merges keep pointing at something."""
    customer = await get_customer(session, customer_id)
    customer.deleted_at = utcnow()
    await session.flush()
    return customer


async def create_customer(session: AsyncSession, data: CustomerIn, region: str) -> Customer:
    if data.organisation_id is not None:
        organisation = await get_customer(session, data.organisation_id)
        if organisation.kind != "organisation":
            raise InvalidInput("organisation_id: not an organisation")
    if data.account_number is not None:
        taken = await session.scalar(
            select(Customer.id).where(Customer.account_number == data.account_number)
        )
        if taken is not None:
            raise Conflict(f"account_number {data.account_number!r} belongs to customer {taken}")
    customer = Customer(
        kind=data.kind,
        name=data.name,
        organisation_id=data.organisation_id,
        account_number=data.account_number,
        language=data.language,
        tags=sorted(set(data.tags)),
        consent=dict(data.consent),
        notes=data.notes,
        tier_override=data.tier_override,
        phones=[],
        emails=[],
    )
    seen: set[str] = set()
    for index, phone in enumerate(data.phones):
        e164 = _e164(phone.number, region, f"phones.{index}.number")
        if e164 not in seen:
            seen.add(e164)
            customer.phones.append(Phone(e164=e164, label=phone.label))
    for address in dict.fromkeys(data.emails):
        customer.emails.append(Email(address=address))
    session.add(customer)
    await session.flush()
    await _store_name_keys(session, customer)
    return customer


async def _store_name_keys(session: AsyncSession, customer: Customer) -> None:
    """The customer's name keys, replacing any earlier ones (see :func:`probable_duplicates`)."""
    await session.execute(delete(CustomerNameKey).where(CustomerNameKey.customer_id == customer.id))
    keys = sorted(name_keys(customer.name, customer.kind))
    if keys:
        await session.execute(
            insert(CustomerNameKey), [{"customer_id": customer.id, "key": key} for key in keys]
        )


async def update_customer(
    session: AsyncSession, customer_id: int, patch: CustomerPatch
) -> Customer:
    customer = await get_customer(session, customer_id)
    changes = patch.model_dump(exclude_unset=True)
    if "tier_override" in changes:
        changes["tier_override"] = changes["tier_override"] or None
    if "tags" in changes:
        changes["tags"] = sorted(set(changes["tags"] or []))
    for key, value in changes.items():
        if value is not None or key == "tier_override":
            setattr(customer, key, value)
    await session.flush()
    if changes.get("name") is not None:
        await _store_name_keys(session, customer)
    return customer


async def add_phone(session: AsyncSession, customer_id: int, phone: PhoneIn, region: str) -> Phone:
    customer = await get_customer(session, customer_id)
    e164 = _e164(phone.number, region, "number")
    for existing in customer.phones:
        if existing.e164 == e164:
            return existing
    added = Phone(e164=e164, label=phone.label)
    customer.phones.append(added)
    await session.flush()
    return added


async def lookup_by_caller_id(session: AsyncSession, raw: str | None, region: str) -> LookupResult:
    """Every form of the number finds the same customer; withheld numbers are 'unknown'."""
    if is_withheld(raw):
        return LookupResult("unknown", None)
    candidates = lookup_candidates(raw, region)
    if not candidates:
        return LookupResult("unknown", None)
    # one round trip on plain tables, no ORM: this runs for every call before the agent rings
    rows = await session.execute(_CALLER_QUERY, {"numbers": candidates})
    matches: dict[str, list[CallerMatch]] = {}
    for e164, customer_id, name, tier, language in rows:
        matches.setdefault(e164, []).append(CallerMatch(customer_id, name, tier, language))
    for same_number in matches.values():
        same_number.sort(key=lambda match: match.id)  # a few rows: cheaper here than in SQL
    # the most likely interpretation of the number that matches anyone wins
    for number in candidates:
        found = matches.get(number)
        if found:
            return LookupResult("found" if len(found) == 1 else "ambiguous", number, found)
    return LookupResult("unknown", candidates[0])


_PHONES = Phone.__table__
_CUSTOMERS = Customer.__table__
_CALLER_QUERY = (
    select(
        _PHONES.c.e164, _CUSTOMERS.c.id, _CUSTOMERS.c.name, _CUSTOMERS.c.tier, _CUSTOMERS.c.language
    )
    .join(_CUSTOMERS, _CUSTOMERS.c.id == _PHONES.c.customer_id)
    .where(
        _PHONES.c.e164.in_(bindparam("numbers", expanding=True)),
        _CUSTOMERS.c.merged_into_id.is_(None),
        _CUSTOMERS.c.deleted_at.is_(None),
    )
)


async def customers_by_ids(session: AsyncSession, ids: list[int]) -> list[Customer]:
    """Full records (phones and e-mails loaded), in the order of ``ids``."""
    if not ids:
        return []
    rows = {c.id: c for c in await session.scalars(select(Customer).where(Customer.id.in_(ids)))}
    return [rows[i] for i in ids if i in rows]


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def search_customers(
    session: AsyncSession, query: str, region: str, limit: int = 25, offset: int = 0
) -> list[Customer]:
    """By name, account number, e-mail or any form of a phone number."""
    query = query.strip()
    conditions = [
        Customer.name.ilike(_like(query), escape="\\"),
        Customer.account_number == query,
    ]
    numbers = lookup_candidates(query, region) if any(ch.isdigit() for ch in query) else []
    if numbers:
        conditions.append(Customer.id.in_(select(Phone.customer_id).where(Phone.e164.in_(numbers))))
    if "@" in query:
        conditions.append(
            Customer.id.in_(select(Email.customer_id).where(Email.address == query.lower()))
        )
    result = await session.scalars(
        select(Customer)
        .where(or_(*conditions), Customer.merged_into_id.is_(None), Customer.deleted_at.is_(None))
        .order_by(Customer.name, Customer.id)
        .limit(limit)
        .offset(offset)
    )
    return list(result)


CANDIDATES = 500
"""At most this many records sharing a name key are compared with one customer."""


def duplicate_record(customer: Customer) -> CustomerRecord:
    return CustomerRecord(
        id=customer.id,
        kind="organisation" if customer.kind == "organisation" else "person",
        name=customer.name,
        phones=frozenset(p.e164 for p in customer.phones),
        emails=frozenset(e.address for e in customer.emails),
    )


async def probable_duplicates(
    session: AsyncSession, customer: Customer
) -> list[DuplicateCandidate]:
    """The customer's probable duplicates among the live records, most probable first.

    Compared are the records :func:`crm_core.dedup.find_duplicates` would compare: those
    sharing a phone, an e-mail or a name key (stored per customer, so "Smith, John" finds
    "John Smith" and 张伟 finds 张玮). Of a very common key's records, those sharing the
    most keys come first, up to :data:`CANDIDATES`.
    """
    keys = sorted(name_keys(customer.name, duplicate_record(customer).kind))
    by_name = (
        select(CustomerNameKey.customer_id)
        .where(CustomerNameKey.key.in_(keys), CustomerNameKey.customer_id != customer.id)
        .group_by(CustomerNameKey.customer_id)
        .order_by(func.count().desc(), CustomerNameKey.customer_id)
        .limit(CANDIDATES)
    )
    phones = [p.e164 for p in customer.phones]
    emails = [e.address for e in customer.emails]
    rows = await session.scalars(
        select(Customer).where(
            Customer.id != customer.id,
            Customer.merged_into_id.is_(None),
            Customer.deleted_at.is_(None),
            or_(
                Customer.id.in_(select(Phone.customer_id).where(Phone.e164.in_(phones))),
                Customer.id.in_(select(Email.customer_id).where(Email.address.in_(emails))),
                Customer.id.in_(by_name.scalar_subquery()),
            ),
        )
    )
    return duplicates_of(duplicate_record(customer), [duplicate_record(c) for c in rows])
