"""What callers may write into the CRM: validated, bounded, no control characters.

The same models validate REST payloads and in-process calls, so hostile text (SQL fragments,
markup, megabyte strings, control characters) is refused once, before anything is stored. Markup
is stored as given and escaped where it is shown.

Times must carry a timezone (pydantic's ``AwareDatetime``): ``2026-12-01T10:00:00`` is refused,
not read as UTC, because a contact center spans zones and a guessed one moves a callback by
hours. Ids are bounded by what both databases store (PostgreSQL ``integer``), so a huge id is a
422, never an overflow inside a driver.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

MAX_ID = 2**31 - 1
"""The largest id a row can have: PostgreSQL's ``integer``, the id columns' type."""
_LINE_BREAK = re.compile(r"[\r\n\u2028\u2029]")


def _no_control(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("control characters are not allowed")
    return value


def has_control(value: str) -> bool:
    """True when ``value`` holds a control character other than tab and line breaks."""
    return _CONTROL.search(value) is not None


def _one_line(value: str) -> str:
    if _LINE_BREAK.search(value):
        raise ValueError("line breaks are not allowed")
    return _no_control(value)


Line = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=200), AfterValidator(_one_line)
]
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_one_line),
]
Text = Annotated[str, StringConstraints(max_length=10000), AfterValidator(_no_control)]
Note = Annotated[str, StringConstraints(max_length=5000), AfterValidator(_no_control)]
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
Tag = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=40),
    AfterValidator(_one_line),
]
PhoneText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]
EmailText = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, to_lower=True, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
    ),
    AfterValidator(_no_control),
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
    ivr_inputs: dict[str, Line] | None = None
    routing: dict[str, Any] | None = None
    disposition: Line | None = None
    notes: Text | None = None
    recordings: list[Line] | None = Field(default=None, max_length=20)
    survey_score: int | None = Field(default=None, ge=1, le=5)
    segments: list[SegmentIn] | None = Field(default=None, max_length=10000)

    @property
    def external_key(self) -> str:
        return f"{self.node}:{self.linkedid}"
