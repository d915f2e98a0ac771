"""The CRM's tables: one customer record that every channel and department shares.

Typed SQLAlchemy 2 models, portable between SQLite (embedded default) and PostgreSQL. Times are
stored in UTC and always come back timezone-aware, whatever the database keeps.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

CUSTOMER_KINDS = ("person", "organisation")
INTERACTION_KINDS = ("inbound_call", "outbound_call", "ivr_only", "abandoned", "callback", "survey")
ROLES = ("agent", "supervisor", "manager", "admin")
CASE_STATUSES = ("open", "assigned", "resolved", "closed")
SEVERITIES = ("low", "medium", "high", "critical")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC; SQLite drops the zone, so it is put back on the way out."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous: give a timezone")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UtcDateTime,
        dict[str, Any]: JSON,
        list[Any]: JSON,
        Decimal: Numeric(14, 2),
    }


class Team(Base):
    __tablename__ = "teams"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)


class User(Base):
    """Anyone who signs in: agents, supervisors, service managers, administrators."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(120))
    role: Mapped[str] = mapped_column(String(12))
    password_hash: Mapped[str] = mapped_column(String(255))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"))
    extension: Mapped[str | None] = mapped_column(String(16))
    languages: Mapped[list[Any]] = mapped_column(default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    skills: Mapped[list[UserSkill]] = relationship(
        back_populates="user", cascade="all, delete-orphan", lazy="selectin"
    )


class Skill(Base):
    __tablename__ = "skills"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)


class UserSkill(Base):
    """An agent's skill at a level from 1 (learning) to 10 (expert)."""

    __tablename__ = "user_skills"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    skill_id: Mapped[int] = mapped_column(ForeignKey("skills.id"), primary_key=True)
    level: Mapped[int] = mapped_column(Integer)

    user: Mapped[User] = relationship(back_populates="skills")
    skill: Mapped[Skill] = relationship(lazy="joined")


class ApiToken(Base):
    """A bearer token for the REST API; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    last_used_at: Mapped[datetime | None]  # refreshed at most once a minute


class LoginFailures(Base):
    """Sign-in tries of one account (``user:<name>``) or one address (``addr:<ip>``), counted
    before the password is checked; a success forgets the account's (``last_failure_at``: the
    last try).

    In the database, not in memory, so that every server sharing it sees the same count and
    a lockout holds whichever server the next try reaches."""

    __tablename__ = "login_failures"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime] = mapped_column(index=True)
    locked_until: Mapped[datetime | None]


class UiSessionRecord(Base):
    """A browser signed in to the agent UI, shared by every server on this database.

    Only the SHA-256 of the cookie's random id is kept: a copy of this table (a backup, a
    replica) signs nobody in. ``fingerprint`` is of the user's row as signed in, so that a
    change of role, password or extension is noticed by every server."""

    __tablename__ = "ui_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)  # last seen + the idle timeout


class UserAudit(Base):
    """Who created or changed a user, when, and what changed (never a password or its hash)."""

    __tablename__ = "user_audits"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(120))  # "api:alice", "cli:root", "system"
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    action: Mapped[str] = mapped_column(String(16))  # created, changed, disabled, enabled
    changes: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Customer(Base):
    """A person or an organisation; a person may be a contact of an organisation (account)."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(12), default="person")
    name: Mapped[str] = mapped_column(String(200))
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    account_number: Mapped[str | None] = mapped_column(String(32), unique=True)
    language: Mapped[str | None] = mapped_column(String(16))
    tags: Mapped[list[Any]] = mapped_column(default=list)
    consent: Mapped[dict[str, Any]] = mapped_column(default=dict)
    notes: Mapped[str] = mapped_column(Text, default="")
    tier: Mapped[str] = mapped_column(String(16), default="standard")
    tier_override: Mapped[str | None] = mapped_column(String(16))
    tier_reason: Mapped[str] = mapped_column(String(200), default="")
    recency_score: Mapped[int] = mapped_column(Integer, default=1)
    frequency_score: Mapped[int] = mapped_column(Integer, default=1)
    monetary_score: Mapped[int] = mapped_column(Integer, default=1)
    lifetime_value: Mapped[Decimal] = mapped_column(default=Decimal("0"))
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    pin_hash: Mapped[str | None] = mapped_column(String(200))  # argon2 of the IVR PIN, if set
    pin_failures: Mapped[int] = mapped_column(default=0, server_default="0")  # wrong in a row
    pin_locked_until: Mapped[datetime | None] = mapped_column()  # too many wrong PINs
    deleted_at: Mapped[datetime | None] = mapped_column()  # soft deletion keeps the history
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    phones: Mapped[list[Phone]] = relationship(
        back_populates="customer", cascade="all, delete-orphan", lazy="selectin"
    )
    emails: Mapped[list[Email]] = relationship(
        back_populates="customer", cascade="all, delete-orphan", lazy="selectin"
    )


class CustomerNameKey(Base):
    """A blocking key of a customer's name (:func:`crm_core.dedup.name_keys`): the records
    sharing a key are the ones worth comparing for duplicates, found by an indexed equality."""

    __tablename__ = "customer_name_keys"

    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)


class Phone(Base):
    __tablename__ = "phones"
    __table_args__ = (UniqueConstraint("customer_id", "e164"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    e164: Mapped[str] = mapped_column(String(20), index=True)
    label: Mapped[str] = mapped_column(String(20), default="mobile")

    customer: Mapped[Customer] = relationship(back_populates="phones")


class Email(Base):
    __tablename__ = "emails"
    __table_args__ = (UniqueConstraint("customer_id", "address"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    address: Mapped[str] = mapped_column(String(254), index=True)

    customer: Mapped[Customer] = relationship(back_populates="emails")


class Transaction(Base):
    """An order, payment or refund: what the value model is computed from."""

    __tablename__ = "transactions"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    kind: Mapped[str] = mapped_column(String(12), default="order")
    amount: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    at: Mapped[datetime]
    external_ref: Mapped[str | None] = mapped_column(String(80), unique=True)


class Interaction(Base):
    """One contact with a customer, whatever the channel; one row per (node, linkedid)."""

    __tablename__ = "interactions"
    __table_args__ = (Index("ix_interactions_customer_arrived", "customer_id", "arrived_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    external_key: Mapped[str] = mapped_column(String(200), unique=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    kind: Mapped[str] = mapped_column(String(20), default="inbound_call")
    caller_number: Mapped[str | None] = mapped_column(String(64))
    caller_name: Mapped[str | None] = mapped_column(String(200))
    dialed: Mapped[str | None] = mapped_column(String(64))
    arrived_at: Mapped[datetime | None]
    queued_at: Mapped[datetime | None]
    offered_at: Mapped[datetime | None]
    answered_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    queue: Mapped[str | None] = mapped_column(String(64))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    agent_name: Mapped[str | None] = mapped_column(String(80))
    ended_by: Mapped[str | None] = mapped_column(String(12))  # caller, agent, transfer, system
    ivr_path: Mapped[list[Any]] = mapped_column(default=list)
    ivr_inputs: Mapped[dict[str, Any]] = mapped_column(default=dict)
    routing: Mapped[dict[str, Any]] = mapped_column(default=dict)
    disposition: Mapped[str | None] = mapped_column(String(40))
    notes: Mapped[str] = mapped_column(Text, default="")
    recordings: Mapped[list[Any]] = mapped_column(default=list)
    survey_score: Mapped[int | None] = mapped_column(Integer)
    rates_interaction_id: Mapped[int | None] = mapped_column(ForeignKey("interactions.id"))
    # how the call sounded to each browser phone on it: {extension: summary} (crm_core.call_quality)
    quality: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


HAND_OVERS = ("answer", "attended", "blind", "blonde", "pickup", "forward", "redirect", "park")


class InteractionParty(Base):
    """One party the customer talked to on a call, in order (the call's chain): who had the
    customer, from when to when, and how they got them (``how``: ``answer`` for the first
    answerer, else the hand-over's kind, made by ``by_party``). Each agent's own segment is
    what their statistics count: whoever took a call by transfer handled it too."""

    __tablename__ = "interaction_parties"
    __table_args__ = (UniqueConstraint("interaction_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    interaction_id: Mapped[int] = mapped_column(ForeignKey("interactions.id"))
    position: Mapped[int] = mapped_column(Integer)  # 0: the first answerer
    party: Mapped[str] = mapped_column(String(120))  # a device: PJSIP/1002, a Local channel
    extension: Mapped[str | None] = mapped_column(String(16))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    agent_name: Mapped[str | None] = mapped_column(String(80))  # the queue member's name
    how: Mapped[str] = mapped_column(String(12))  # one of HAND_OVERS
    by_party: Mapped[str | None] = mapped_column(String(120))  # who made the hand-over
    started_at: Mapped[datetime] = mapped_column(index=True)
    ended_at: Mapped[datetime | None]
    seconds: Mapped[float] = mapped_column(Float)


class TranscriptSegment(Base):
    __tablename__ = "transcript_segments"

    id: Mapped[int] = mapped_column(primary_key=True)
    interaction_id: Mapped[int] = mapped_column(ForeignKey("interactions.id"), index=True)
    speaker: Mapped[str] = mapped_column(String(16))
    start: Mapped[float] = mapped_column(Float)
    end: Mapped[float] = mapped_column(Float)
    text: Mapped[str] = mapped_column(Text)
    confidence: Mapped[float] = mapped_column(Float)
    words: Mapped[list[Any]] = mapped_column(default=list)


class ComplaintSignal(Base):
    """The complaint detector's finding on one interaction, with its evidence."""

    __tablename__ = "complaint_signals"

    id: Mapped[int] = mapped_column(primary_key=True)
    interaction_id: Mapped[int] = mapped_column(ForeignKey("interactions.id"), index=True)
    probability: Mapped[float] = mapped_column(Float)
    category: Mapped[str] = mapped_column(String(40))
    severity: Mapped[str] = mapped_column(String(12))
    evidence: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ComplaintCase(Base):
    """A complaint worked by service managers: open → assigned → resolved → closed."""

    __tablename__ = "complaint_cases"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    category: Mapped[str] = mapped_column(String(40))
    severity: Mapped[str] = mapped_column(String(12))
    status: Mapped[str] = mapped_column(String(12), default="open", index=True)
    summary: Mapped[str] = mapped_column(Text, default="")
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    assigned_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    due_at: Mapped[datetime]
    evidence: Mapped[list[Any]] = mapped_column(default=list)
    root_cause: Mapped[str | None] = mapped_column(Text)  # why it happened, said on resolving
    source_signal_id: Mapped[int | None] = mapped_column(ForeignKey("complaint_signals.id"))


class CaseInteraction(Base):
    __tablename__ = "case_interactions"

    case_id: Mapped[int] = mapped_column(ForeignKey("complaint_cases.id"), primary_key=True)
    interaction_id: Mapped[int] = mapped_column(ForeignKey("interactions.id"), primary_key=True)


class FollowUp(Base):
    """A callback or reminder owned by someone, due at a time."""

    __tablename__ = "follow_ups"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    interaction_id: Mapped[int | None] = mapped_column(ForeignKey("interactions.id"))
    kind: Mapped[str] = mapped_column(String(12), default="callback")
    due_at: Mapped[datetime] = mapped_column(index=True)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    status: Mapped[str] = mapped_column(String(12), default="open")
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    done_at: Mapped[datetime | None]
    # a callback taken in the IVR keeps the caller's place: where they would have waited
    queue: Mapped[str | None] = mapped_column(String(64))
    queue_position: Mapped[int | None]  # 1: first in line when the callback was offered
    joined_at: Mapped[datetime | None]  # when they called; due_at is the same: first come first
    estimated_wait: Mapped[int | None]  # seconds, as offered


class MergeAudit(Base):
    """What a merge moved, so that it can be undone exactly."""

    __tablename__ = "merge_audits"

    id: Mapped[int] = mapped_column(primary_key=True)
    survivor_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    merged_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    performed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    performed_at: Mapped[datetime] = mapped_column(default=utcnow)
    moved: Mapped[dict[str, Any]] = mapped_column(default=dict)
    survivor_before: Mapped[dict[str, Any]] = mapped_column(default=dict)
    undone_at: Mapped[datetime | None]
