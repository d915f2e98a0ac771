"""The desk's ``call_quality`` message: how a call sounded to the agent's browser phone.

The page sends it when a call ends (``final``) and every minute of a long one, on the desk's
socket. It is checked here (the fields of :class:`crm_core.call_quality.CallQualityIn`, strict),
taken only for a call this desk has or had (ringing, answered, or its wrap-up still open: a
desk cannot write on a colleague's call), and published as ``CallQualityReported``; the recorder
journals it and stores it on the call's interaction like every other write to the CRM, so a
database outage loses nothing.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import StringConstraints

from agent_ui.desktop import Desks
from agent_ui.messages import parsed
from agent_ui.ws import Connection, Reply, UiError
from crm_core.access import least
from crm_core.call_quality import CallQualityIn
from cti_server.events import CallKey, CallQualityReported


class CallQualityMessage(CallQualityIn):
    """The message as the page sends it: the summary, and which call it is about."""

    type: Literal["call_quality"]
    linkedid: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,120}$")]

    def summary(self) -> dict[str, Any]:
        return self.model_dump(exclude={"type", "linkedid"})


class CallQualityReports:
    """Takes the desks' reports and hands them to the recorder through the bus."""

    def __init__(self, desks: Desks) -> None:
        self.desks = desks
        desks.hub.handle("call_quality", least("desk.use"), ("desk",), self.report)

    def _call_of(self, extension: str, linkedid: str) -> CallKey:
        """The call ``linkedid`` as this desk knows it; refused if the desk never had it."""
        for text in self.desks.serving(extension).calls:
            key = CallKey.parse(text)
            if key.linkedid == linkedid:
                return key
        raise UiError("that call is not yours: only the agent who had a call reports its quality")

    async def report(self, connection: Connection, message: dict[str, Any]) -> Reply:
        extension = connection.session.extension
        if not extension:
            raise UiError("your user has no extension: ask an administrator to give you one")
        wanted = parsed(CallQualityMessage, message, "call quality refused: ")
        key = self._call_of(extension, wanted.linkedid)
        self.desks.deps.bus.publish(
            CallQualityReported(
                node=key.node,
                linkedid=key.linkedid,
                extension=extension,
                quality=wanted.summary(),
            )
        )
        return None
