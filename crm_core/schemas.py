"""What callers may write into the CRM (validated, bounded, no character that changes what the
screen shows) and what the API answers (the response models the OpenAPI document is built from).

The same models validate REST payloads and in-process calls, so hostile text (SQL fragments,
markup, megabyte strings, control, bidirectional and zero-width characters: the rule of
:mod:`crm_core.text_rules`) is refused once, before anything is stored. Markup is stored as given
and escaped where it is shown.

Times must carry a timezone (pydantic's ``AwareDatetime``): ``2026-12-01T10:00:00`` is refused,
not read as UTC, because a contact center spans zones and a guessed one moves a callback by
hours. Ids are bounded by what both databases store (PostgreSQL ``integer``), so a huge id is a
422, never an overflow inside a driver.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

from crm_core.call_quality import CallQualityIn
from crm_core.call_quality import Extension as QualityExtension
from crm_core.text_rules import checked_text, unsafe_character

MAX_ID = 2**31 - 1
"""The largest id a row can have: PostgreSQL's ``integer``, the id columns' type."""
_LINE_BREAK = re.compile(r"[\r\n\u2028\u2029]")


def has_control(value: str) -> bool:
    """True when ``value`` holds a character that text may not hold (see ``text_rules``)."""
    return unsafe_character(value) is not None


def _one_line(value: str) -> str:
    if _LINE_BREAK.search(value):
        raise ValueError("line breaks are not allowed")
    return checked_text(value)


Line = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=200), AfterValidator(_one_line)
]
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_one_line),
]
Text = Annotated[str, StringConstraints(max_length=10000), AfterValidator(checked_text)]
Note = Annotated[str, StringConstraints(max_length=5000), AfterValidator(checked_text)]
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
Tag = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=40),
    AfterValidator(_one_line),
]
PhoneText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=40),
    AfterValidator(checked_text),
]
EmailText = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, to_lower=True, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
    ),
    AfterValidator(checked_text),
]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class PhoneIn(_Input):
    number: PhoneText
    label: Literal["mobile", "home", "work", "fax", "other"] = "mobile"


class CustomerIn(_Input):
    kind: Literal["person", "organisation"] = "person"
    name: Name
    organisation_id: Id | None = None
    account_number: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]{1,32}$")] | None = None
    language: (
        Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")] | None
    ) = None
    phones: list[PhoneIn] = Field(default_factory=list, max_length=20)
    emails: list[EmailText] = Field(default_factory=list, max_length=20)
    tags: list[Tag] = Field(default_factory=list, max_length=50)
    consent: dict[Literal["marketing", "recording", "sms", "email"], bool] = Field(
        default_factory=dict
    )
    notes: Text = ""
    tier_override: Literal["platinum", "gold", "silver", "standard"] | None = None


class CustomerPatch(_Input):
    """Fields to change; absent fields stay as they are."""

    name: Name | None = None
    language: (
        Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")] | None
    ) = None
    tags: list[Tag] | None = Field(default=None, max_length=50)
    consent: dict[Literal["marketing", "recording", "sms", "email"], bool] | None = None
    notes: Text | None = None
    tier_override: Literal["platinum", "gold", "silver", "standard", ""] | None = None


class TransactionIn(_Input):
    kind: Literal["order", "payment", "refund"] = "order"
    amount: Decimal = Field(
        max_digits=14, decimal_places=2, gt=Decimal("-1e12"), lt=Decimal("1e12")
    )
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = "CNY"
    at: AwareDatetime
    external_ref: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,80}$")] | None = (
        None
    )


class SegmentIn(_Input):
    speaker: Literal["customer", "agent", "ivr", "unknown"]
    start: float = Field(ge=0)
    end: float = Field(ge=0)
    text: Text
    confidence: float = Field(ge=0, le=1)
    words: list[dict[str, Any]] = Field(default_factory=list, max_length=5000)


class IvrStepIn(_Input):
    """One IVR step the caller went through: what, how long, what they entered (masked)."""

    step: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
    type: Annotated[str, StringConstraints(pattern=r"^[a-z]{1,20}$")]
    seconds: float = Field(ge=0, le=86400)
    input: Line = ""


HandOver = Literal["answer", "attended", "blind", "blonde", "pickup", "forward", "redirect", "park"]
"""How a party got the customer: ``answer`` for the first answerer, else the hand-over's kind."""


Device = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=120), AfterValidator(_one_line)
]
"""An Asterisk device or channel name (``PJSIP/1002``, ``Local/1002@agents``)."""
Extension = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=16), AfterValidator(_one_line)
]
AgentName = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=80), AfterValidator(_one_line)
]


class PartyIn(_Input):
    """One party the customer talked to, in the order of the call's chain."""

    party: Device = Field(min_length=1)
    extension: Extension | None = None
    agent_id: Id | None = None
    agent_name: AgentName | None = None
    how: HandOver
    by_party: Device | None = None
    started_at: AwareDatetime
    ended_at: AwareDatetime | None = None
    seconds: float = Field(ge=0, le=7 * 86400)

    @model_validator(mode="after")
    def _ends_after_it_starts(self) -> PartyIn:
        if self.ended_at is not None and self.ended_at < self.started_at:
            raise ValueError("ended_at is before started_at")
        return self


def interaction_key(node: str, linkedid: str) -> str:
    """The key a call's interaction is stored under, ``node:linkedid`` (a linkedid is unique on
    its Asterisk node only); the CTI server's ``CallKey`` prints the same text."""
    return f"{node}:{linkedid}"


class InteractionIn(_Input):
    """One contact; written by (node, linkedid) so that writing it twice updates it."""

    node: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,40}$")]
    linkedid: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,120}$")]
    kind: (
        Literal["inbound_call", "outbound_call", "ivr_only", "abandoned", "callback", "survey"]
        | None
    ) = None
    customer_id: Id | None = None
    caller_number: Line | None = None
    caller_name: Line | None = None
    dialed: Line | None = None
    arrived_at: AwareDatetime | None = None
    queued_at: AwareDatetime | None = None
    offered_at: AwareDatetime | None = None
    answered_at: AwareDatetime | None = None
    ended_at: AwareDatetime | None = None
    queue: Line | None = None
    agent_id: Id | None = None
    agent_name: Line | None = None
    ended_by: Literal["caller", "agent", "transfer", "system"] | None = None
    ivr_path: list[IvrStepIn] | None = Field(default=None, max_length=200)
    ivr_inputs: dict[Line, Line] | None = None
    routing: dict[str, Any] | None = None
    disposition: Line | None = None
    notes: Text | None = None
    recordings: list[Line] | None = Field(default=None, max_length=20)
    survey_score: int | None = Field(default=None, ge=1, le=5)
    segments: list[SegmentIn] | None = Field(default=None, max_length=10000)
    parties: list[PartyIn] | None = Field(
        default=None,
        max_length=100,
        description="the call's chain, in order; replaces the parties stored before",
    )
    quality: dict[QualityExtension, CallQualityIn] | None = Field(
        default=None,
        max_length=20,
        description="how the call sounded to each browser phone on it, by extension",
    )

    @property
    def external_key(self) -> str:
        return interaction_key(self.node, self.linkedid)


# -- what the API answers ---------------------------------------------------------------------
# The handlers build these models and the route turns them into JSON, so the OpenAPI document
# (built from the same models) and the output cannot drift apart.

CustomerKind = Literal["person", "organisation"]
PhoneLabel = Literal["mobile", "home", "work", "fax", "other"]
Tier = Literal["platinum", "gold", "silver", "standard"]
Severity = Literal["low", "medium", "high", "critical"]
CaseStatus = Literal["open", "assigned", "resolved", "closed"]
Role = Literal["agent", "supervisor", "manager", "admin"]
InteractionKind = Literal[
    "inbound_call", "outbound_call", "ivr_only", "abandoned", "callback", "survey"
]
MONEY_PATTERN = r"^-?[0-9]+\.[0-9]{2}$"
_CENT = Decimal("0.01")


def _two_places(value: Decimal) -> str:
    return str(value.quantize(_CENT, rounding=ROUND_HALF_UP))


Money = Annotated[
    Decimal,
    PlainSerializer(_two_places, return_type=str),
    WithJsonSchema({"type": "string", "pattern": MONEY_PATTERN, "examples": ["3600.00"]}),
]
"""An amount of money: a decimal string with exactly two places, ``"0.00"``, ``"3600.00"``.

A string because a JSON number is a binary float in most clients (JavaScript, a spreadsheet
import), which cannot hold every cent exactly; two places always, because the column is
``Numeric(14, 2)`` and a value computed in Python (``0.0``) and the same value read back
(``0.00``) must look the same to a client comparing them."""


class _Output(BaseModel):
    # every field is always present in the answer (null when it has no value), so clients
    # generated from the document need no "is it there" checks
    model_config = ConfigDict(frozen=True, json_schema_serialization_defaults_required=True)


class FieldError(_Output):
    field: str = Field(description="where: a body field (dotted path) or a parameter's name")
    message: str


class ErrorOut(BaseModel):
    """Every error answer: a stable code for programs, a message for people, and for a 422 the
    invalid fields (absent otherwise)."""

    model_config = ConfigDict(frozen=True)

    error: str = Field(description="a stable code: invalid, not_found, forbidden, conflict, ...")
    message: str
    fields: list[FieldError] | None = Field(default=None, description="the invalid fields of a 422")


class PhoneOut(_Output):
    id: int
    number: str = Field(description="E.164", pattern=r"^\+[0-9]{2,15}$")
    label: PhoneLabel


class ValueOut(_Output):
    tier: Tier
    tier_override: Tier | None
    reason: str
    recency: int = Field(ge=1, le=5)
    frequency: int = Field(ge=1, le=5)
    monetary: int = Field(ge=1, le=5)
    lifetime_value: Money


class CustomerOut(_Output):
    id: int
    kind: CustomerKind
    name: str
    organisation_id: int | None
    account_number: str | None
    language: str | None
    phones: list[PhoneOut]
    emails: list[str]
    tags: list[str]
    consent: dict[str, bool]
    notes: str
    value: ValueOut
    created_at: datetime


class CustomerPage(_Output):
    items: list[CustomerOut]
    limit: int
    offset: int


class LookupOut(_Output):
    status: Literal["unknown", "found", "ambiguous"]
    number: str | None = Field(description="the E.164 form that matched (or was tried first)")
    customers: list[CustomerOut]


class DeletedOut(_Output):
    id: int
    deleted_at: datetime


class TransactionOut(_Output):
    id: int
    value: ValueOut = Field(description="the customer's value after this transaction")


class DuplicateOut(_Output):
    customer_id: int
    score: float
    reasons: list[str]


class DuplicateList(_Output):
    items: list[DuplicateOut]


class MergeOut(_Output):
    id: int
    survivor_id: int
    merged_id: int
    performed_by: int | None
    performed_at: datetime
    moved: dict[str, Any] = Field(description="what moved from the merged customer, by table")
    undone_at: datetime | None


class IvrStepOut(_Output):
    """One IVR step the caller went through (what the recorder writes: ``IvrStepIn``)."""

    step: str
    type: str = Field("", description="menu, play, collect, ...; empty when not recorded")
    seconds: float | None = Field(None, description="how long it took; null when not recorded")
    input: str = Field("", description="what the caller entered (secrets masked)")


class PartyOut(_Output):
    """One party the customer talked to: who had the call, for how long, how they got it."""

    position: int = Field(ge=0, description="0: the first answerer, then each hand-over")
    party: str = Field(description="the device: PJSIP/1002, or a Local channel")
    extension: str | None
    agent_id: int | None = Field(description="the CRM user behind the extension, if known")
    agent_name: str | None = Field(description="the queue member's name, if an agent")
    how: HandOver = Field(description="answer (the first answerer) or the hand-over's kind")
    by_party: str | None = Field(description="the device that made the hand-over, if known")
    started_at: datetime
    ended_at: datetime | None
    seconds: float = Field(ge=0, description="how long this party had the customer")


class InteractionOut(_Output):
    id: int
    external_key: str = Field(description="node:linkedid")
    customer_id: int | None
    kind: InteractionKind
    caller_number: str | None
    caller_name: str | None
    dialed: str | None
    arrived_at: datetime | None
    queued_at: datetime | None
    offered_at: datetime | None
    answered_at: datetime | None
    ended_at: datetime | None
    queue: str | None
    agent_id: int | None
    agent_name: str | None
    ended_by: Literal["caller", "agent", "transfer", "system"] | None
    ivr_path: list[IvrStepOut]
    ivr_inputs: dict[str, str]
    routing: dict[str, Any]
    disposition: str | None
    notes: str
    recordings: list[str]
    survey_score: int | None
    parties: list[PartyOut] = Field(
        description="the parties the customer talked to, in order (empty: nobody answered)"
    )


class InteractionPage(_Output):
    items: list[InteractionOut]
    limit: int
    offset: int


class SegmentOut(_Output):
    speaker: Literal["customer", "agent", "ivr", "unknown"]
    start: float
    end: float
    text: str
    confidence: float


class InteractionDetailOut(InteractionOut):
    segments: list[SegmentOut] = Field(description="the transcript, in the order it was said")


class CaseOut(_Output):
    id: int
    customer_id: int
    category: str
    severity: Severity
    status: CaseStatus
    summary: str
    owner_id: int | None
    opened_at: datetime
    assigned_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    due_at: datetime
    evidence: list[Any]


class CasePage(_Output):
    items: list[CaseOut]
    limit: int
    offset: int


class FollowUpOut(_Output):
    id: int
    customer_id: int
    interaction_id: int | None
    kind: Literal["callback", "reminder", "voicemail"] = Field(
        description="voicemail: a caller left a message to be called back (the recorder's)"
    )
    due_at: datetime
    owner_id: int | None
    status: Literal["open", "done"]
    note: str


class FollowUpPage(_Output):
    items: list[FollowUpOut]
    limit: int
    offset: int


class UserOut(_Output):
    id: int
    username: str
    display_name: str
    role: Role
    extension: str | None
    languages: list[str]
    active: bool
    skills: dict[str, int] = Field(description="skill name to level (1-10)")


class UserList(_Output):
    items: list[UserOut]


class TokenOut(_Output):
    token: str = Field(description="send it as `Authorization: Bearer <token>`")
    id: int = Field(description="to revoke it: DELETE /api/tokens/{id}")
    expires_at: datetime = Field(description="after this the token answers 401")
    user: UserOut


class TokenInfoOut(_Output):
    """A token as its owner sees it later: never the token itself (only its hash is kept)."""

    id: int
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None = Field(description="to the minute")
    revoked: bool
    current: bool = Field(description="the token this request was made with")


class TokenList(_Output):
    items: list[TokenInfoOut]


# -- query parameters ---------------------------------------------------------------------------


class _Query(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Limit = Annotated[int, Field(ge=1, le=200, description="page size")]
Offset = Annotated[int, Field(ge=0, le=10**9, description="how many to skip")]


class PageQuery(_Query):
    limit: Limit = 25
    offset: Offset = 0


class SearchQuery(PageQuery):
    q: Annotated[
        str,
        StringConstraints(max_length=200),
        AfterValidator(checked_text),
        Field(description="text to search for in names, account numbers, e-mails and phones"),
    ] = ""


class LookupQuery(_Query):
    number: Annotated[
        str,
        StringConstraints(max_length=64),
        AfterValidator(checked_text),
        Field(description="the caller ID as Asterisk delivers it (empty: withheld)"),
    ]


class CaseQuery(PageQuery):
    status: CaseStatus | None = None
