"""The live model and the decision core glued as the server glues them, without Asterisk.

AMI messages shaped as Asterisk 22 sends them for a routed call go through the real translator
and tracker; the router reads the tracker, decides and sends its AMI actions to a fake link that
records them. The routing glue's tests and the tracker's routed-figures tests drive the same one.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from crm_core.routing import AgentProfile, CustomerFacts
from cti_server.config import RoutingSettings
from cti_server.events import DomainEvent
from cti_server.routing.policy import builtin_policy_path
from cti_server.routing.reloader import PolicyReloader
from cti_server.routing.router import Router
from cti_server.telephony.ami_client import AmiClient
from cti_server.telephony.ami_events import translate
from cti_server.tracker.tracker import Tracker
from tests.support.fakes import FakeAmiLink, ManualClock

NODE = "pbx1"
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
CALLER = "Local/s@cti-sim-caller-00000001;1"


class FakeDirectory:
    """The CRM as the router asks it: agent profiles, and one customer's facts."""

    def __init__(self, profiles: dict[str, AgentProfile], facts: CustomerFacts | None) -> None:
        self.profiles = profiles
        self.facts = facts

    async def agents(self) -> Mapping[str, AgentProfile]:
        return self.profiles

    async def customer(self, customer_id: int | None) -> CustomerFacts | None:
        return self.facts if customer_id == (self.facts and self.facts.customer_id) else None


class Centre:
    """A tracker fed with AMI messages, a router reading it, what both published."""

    def __init__(
        self,
        facts: CustomerFacts | None = None,
        policy: Path | None = None,
        identify_wait: float = 0.0,
    ) -> None:
        self.clock = ManualClock(T0)
        self.published: list[DomainEvent] = []
        self.link = FakeAmiLink(node=NODE)
        self.tracker = Tracker(self._publish, clock=self.clock)
        profiles = {
            "3001": AgentProfile("3001", {"billing": 9}, frozenset({"en"})),
            "3002": AgentProfile("3002", {"billing": 6}, frozenset({"en"})),
        }
        self.router = Router(
            tracker=self.tracker,
            links=[cast(AmiClient, self.link)],
            policies=PolicyReloader(policy or builtin_policy_path()),
            directory=FakeDirectory(profiles, facts),
            publish=self._publish,
            settings=RoutingSettings(enabled=True),
            waiting_queues=["support"],
            clock=self.clock.timestamp,
            identify_wait=identify_wait,
        )

    def _publish(self, event: DomainEvent) -> None:
        self.published.append(event)
        self.router.on_event(event)

    def ami(self, event: str, **headers: str) -> None:
        translated = translate({"Event": event, **headers}, NODE)
        assert translated is not None, event
        self.tracker.apply(translated)

    def sign_in(self, extension: str) -> None:
        for queue in (f"agent-{extension}", "fallback"):
            self.ami(
                "QueueMemberAdded",
                Queue=queue,
                Interface=f"Local/{extension}@cti-sim-agent/n",
                MemberName=f"sim-{extension}",
                Status="1",
                Paused="0",
            )

    def caller_joins(self, queue: str) -> None:
        self.ami("QueueCallerJoin", Queue=queue, Uniqueid="c1", Linkedid="c1", Channel=CALLER)

    def caller_leaves(self, queue: str) -> None:
        self.ami("QueueCallerAbandon", Queue=queue, Uniqueid="c1", Linkedid="c1")  # app_queue's
        self.ami("QueueCallerLeave", Queue=queue, Uniqueid="c1", Linkedid="c1")

    def of(self, kind: type[DomainEvent]) -> list[Any]:
        return [e for e in self.published if isinstance(e, kind)]


def member(extension: str) -> dict[str, str]:
    """The headers app_queue names the agent of the call ``c1`` with (its own queue)."""
    return {
        "Queue": f"agent-{extension}",
        "Interface": f"Local/{extension}@cti-sim-agent/n",
        "MemberName": f"sim-{extension}",
        "Uniqueid": "c1",
        "Linkedid": "c1",
    }
