"""What the recorder journals: one typed entry per write the CRM must take, told apart by its
``entry`` field. Journals written before entries had one (flat dicts recognised by their keys)
are read into the same types, so an upgrade replays what an outage left behind."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from crm_core.callbacks import CallbackRequest
from crm_core.complaint_intake import Detection
from cti_server.events import CallKey


class _Entry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class InteractionUpdate(_Entry):
    """Fields of one call's interaction, and what they imply beside it."""

    entry: Literal["interaction"] = "interaction"
    node: str
    linkedid: str
    fields: dict[str, Any] = {}
    """The interaction's fields (:class:`crm_core.schemas.InteractionIn`) the event brings."""
    identified: int | None = None
    """The customer the caller ID names (``CustomerIdentified``): the call's, unless it already
    has one (the IVR's identification stands)."""
    caller: str | None = None
    """Journals before ``CustomerIdentified``: a caller ID to look the customer up by, unless
    the call already has one."""
    agent_member: str | None = None
    """The queue member who answered: the interaction's agent is the user of its extension."""
    callback: CallbackRequest | None = None
    complaint: Detection | None = None

    @property
    def key(self) -> CallKey:
        return CallKey(self.node, self.linkedid)

    def crm_fields(self) -> dict[str, Any]:
        """The interaction's fields as :class:`crm_core.schemas.InteractionIn` reads them."""
        return {"node": self.node, "linkedid": self.linkedid, **self.fields}


class CallMerged(_Entry):
    """Not a call of its own: it became part of ``merged_into`` (a pickup's channel)."""

    entry: Literal["merged"] = "merged"
    node: str
    linkedid: str
    merged_into: str


class CallsEndedUnseen(_Entry):
    """After a resync: the node's calls not in ``live`` ended while nobody listened."""

    entry: Literal["ended_unseen"] = "ended_unseen"
    node: str
    live: list[str]
    seen_at: datetime


SpoolEntry = Annotated[
    InteractionUpdate | CallMerged | CallsEndedUnseen, Field(discriminator="entry")
]
_ENTRY: TypeAdapter[SpoolEntry] = TypeAdapter(SpoolEntry)
_OLD_EXTRAS = {"lookup": "caller", "agent": "agent_member", "callback": "callback"}


def stored(entry: SpoolEntry) -> dict[str, Any]:
    """The journal's JSON form of an entry (an interaction's, one per tracker event, is written
    out by hand: faster than pydantic's dump on the event pipeline)."""
    if not isinstance(entry, InteractionUpdate):
        return entry.model_dump(mode="json")
    data: dict[str, Any] = {"entry": entry.entry, "node": entry.node, "linkedid": entry.linkedid}
    if entry.fields:
        data["fields"] = entry.fields
    for name in ("identified", "caller", "agent_member"):
        if (value := getattr(entry, name)) is not None:
            data[name] = value
    for model in ("callback", "complaint"):
        if (found := getattr(entry, model)) is not None:
            data[model] = found.model_dump(mode="json")
    return data


def entry_from_stored(raw: dict[str, Any]) -> SpoolEntry:
    """An entry read back from the journal, in today's shape or the flat one before it.
    Raises :class:`pydantic.ValidationError` for one the types refuse."""
    return _ENTRY.validate_python(raw if "entry" in raw else _from_flat(raw))


def _from_flat(raw: dict[str, Any]) -> dict[str, Any]:
    """The flat dicts journalled before entries were typed: an ``end_unseen`` list, a
    ``merged_into`` call, else an interaction's fields beside a few keys that were no field."""
    if "end_unseen" in raw:
        return {
            "entry": "ended_unseen",
            "node": raw.get("node"),
            "live": raw["end_unseen"],
            "seen_at": raw.get("seen_at"),
        }
    if "merged_into" in raw:
        return {"entry": "merged", **raw}
    entry: dict[str, Any] = {"entry": "interaction", "node": raw.get("node")}
    entry["linkedid"] = raw.get("linkedid")
    fields = {k: v for k, v in raw.items() if k not in ("node", "linkedid", "complaint")}
    for old, new in _OLD_EXTRAS.items():
        if old in fields:
            entry[new] = fields.pop(old)
    if "complaint" in raw:
        entry["complaint"] = raw["complaint"]
    entry["fields"] = fields
    return entry
