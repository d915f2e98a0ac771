"""The public events, version 1: what integrators receive, with field names of their own.

These models are a contract, kept apart from the internal dataclasses of ``cti_server.events``
on purpose: an internal rename changes ``translate`` and nothing here, and the JSON Schemas in
``docs/events`` (generated from these models, checked by a test) show any change to the
contract. A change that breaks a consumer is a new ``version`` of that event type, never an
edit of version 1.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, json_schema_serialization_defaults_required=True
    )


class Caller(_Model):
    """The calling party as the network presented it (personal data)."""

    number: str = Field(description="caller ID number as received; may be empty")
    name: str = Field(description="caller ID name as received; may be empty")


class Customer(_Model):
    """The CRM customer the caller was identified as (personal data)."""

    id: int = Field(description="the CRM customer id (GET /api/customers/{id})")
    name: str | None = Field(description="the customer's name; null when not read yet")
    tier: str | None = Field(description="value tier; null when not read yet")


class Agent(_Model):
    """An agent as the phone system knows them."""

    member: str = Field(
        description="the queue member name, e.g. agent-1001; for a phone that is no queue "
        "member (a pickup, a forward), its device, e.g. PJSIP/1003"
    )
    extension: str | None = Field(description="the agent's extension, when the name has one")


class _CallData(_Model):
    call_id: str = Field(description="the call's id on its node (Asterisk's linkedid)")


class CallArrivedData(_CallData):
    caller: Caller
    dialed: str = Field(description="the number the caller dialled")
    customer: Customer | None = Field(description="identified by caller ID; null: not known")


class CallRingingData(_CallData):
    queue: str
    agent: Agent
    caller: Caller
    customer: Customer | None


class CallAnsweredData(_CallData):
    queue: str
    agent: Agent
    waited_seconds: float = Field(ge=0, description="seconds the caller waited in queues")
    customer: Customer | None


class CallTransferredData(_CallData):
    from_agent: Agent = Field(description="the agent who had the call")
    to_queue: str | None = Field(
        description="the queue it went back to on its way; null: straight to the new party"
    )
    to_agent: Agent | None = Field(
        description="the agent who has it now; null: still waiting in to_queue"
    )
    customer: Customer | None


Outcome = Literal["answered", "abandoned", "unanswered", "ivr_only"]
HungUpBy = Literal["caller", "agent", "transfer", "system"]


class CallEndedData(_CallData):
    outcome: Outcome
    hung_up_by: HungUpBy | None = Field(description="who ended an answered call; null otherwise")
    caller: Caller
    dialed: str
    queue: str | None
    agent: Agent | None = Field(description="the last agent who answered; null: none did")
    customer: Customer | None
    arrived_at: datetime
    queued_at: datetime | None
    answered_at: datetime | None
    ended_at: datetime


Category = Literal["billing", "delivery", "product", "service", "staff", "other"]
Severity = Literal["low", "medium", "high", "critical"]


class Evidence(_Model):
    """Why the detector thinks so: words of the transcript, or a call fact (personal data)."""

    kind: Literal["cue", "model", "fact"]
    cue: str = Field(description="the cue, model term or fact that fired")
    weight: float
    text: str = Field(description="the words of the (redacted) transcript; empty for a fact")
    start: float | None = Field(description="seconds from the start of the call")
    end: float | None


class ComplaintDetectedData(_CallData):
    during_call: bool = Field(description="true: a live alert; false: judged after the call")
    probability: float = Field(ge=0, le=1)
    threshold: float = Field(ge=0, le=1)
    category: Category
    severity: Severity
    language: str
    agent: Agent | None = Field(description="the agent who answered the call; null: unknown")
    customer: Customer | None
    evidence: list[Evidence]


class _Envelope(_Model):
    version: Literal[1] = 1
    id: uuid.UUID = Field(default_factory=uuid.uuid4, description="unique; the same on retries")
    time: datetime = Field(description="when it happened (ISO-8601, UTC)")
    node: str = Field(description="the Asterisk node of the call")


class CallArrived(_Envelope):
    """A customer call reached the server, with the customer the CRM identified by caller ID."""

    type: Literal["call.arrived"] = "call.arrived"
    data: CallArrivedData


class CallRinging(_Envelope):
    """The call is offered to an agent: their phone rings."""

    type: Literal["call.ringing"] = "call.ringing"
    data: CallRingingData


class CallAnswered(_Envelope):
    """An agent answered the call."""

    type: Literal["call.answered"] = "call.answered"
    data: CallAnsweredData


class CallTransferred(_Envelope):
    """A new party took over an answered call (a transfer made at the desktop or on a phone,
    a pickup, a forward, a redirect), or the call went back to a queue and waits there."""

    type: Literal["call.transferred"] = "call.transferred"
    data: CallTransferredData


class CallEnded(_Envelope):
    """The last leg of the call hung up: how it went, who hung up, when."""

    type: Literal["call.ended"] = "call.ended"
    data: CallEndedData


class ComplaintDetected(_Envelope):
    """The complaint detector found dissatisfaction, live or after the call."""

    type: Literal["complaint.detected"] = "complaint.detected"
    data: ComplaintDetectedData


AnyEvent = (
    CallArrived | CallRinging | CallAnswered | CallTransferred | CallEnded | ComplaintDetected
)
PublicEvent = Annotated[AnyEvent, Field(discriminator="type")]
MODELS: tuple[type[_Envelope], ...] = (
    CallArrived,
    CallRinging,
    CallAnswered,
    CallTransferred,
    CallEnded,
    ComplaintDetected,
)
TYPES: tuple[str, ...] = tuple(str(m.model_fields["type"].default) for m in MODELS)
