"""The agent control over AMI, without Asterisk: it finds the agent's own leg of a call, turns
telephony's errors into the UI's one error, and owns the desks' wrap-up (one deadline per agent,
its start and end published on the bus; a wrap-up ended, replaced or called off does not make
the agent available behind the desk's back)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio

from cti_server.bus import MemoryBus
from cti_server.config import UiSettings
from cti_server.control import ControlError
from cti_server.events import CallKey, DomainEvent, WrapUpEnded, WrapUpStarted, event_from_dict
from cti_server.telephony import agent_control
from cti_server.telephony.agent_control import AmiAgentControl
from cti_server.telephony.ami_client import AmiDisconnected
from cti_server.tracker.tracker import Tracker
from tests.support.fakes import FakeAmiLink
from tests.support.live_model import answered_call
from tests.support.waiting import poll_until

NODE = "pbx1"
CALL = CallKey(NODE, "1700000000.1")


@dataclass
class Control:
    control: AmiAgentControl
    link: FakeAmiLink
    tracker: Tracker
    published: list[DomainEvent] = field(default_factory=list)

    def pauses(self) -> list[tuple[str, str]]:
        """(Interface, Paused) of each QueuePause sent, in order."""
        return [(a["Interface"], a["Paused"]) for a in self.link.actions("QueuePause")]

    def of(self, kind: type[DomainEvent]) -> list[Any]:
        return [e for e in self.published if isinstance(e, kind)]


@pytest_asyncio.fixture
async def ctl(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Control]:
    """Agent 8101 on pbx1, a wrap-up of five seconds with no grace, Asterisk saying yes."""
    monkeypatch.setattr(agent_control, "WRAPUP_GRACE", 0.0)
    link = FakeAmiLink(NODE)
    tracker = Tracker(MemoryBus().publish)
    published: list[DomainEvent] = []
    control = AmiAgentControl(
        UiSettings().model_copy(update={"wrapup_seconds": 5}),
        node=NODE,
        links={NODE: link},  # type: ignore[dict-item]  # the part of AmiClient it calls
        live=tracker,
        publish=published.append,
        queues=("support",),
        transfer_queues=("support", "sales"),
    )
    yield Control(control, link, tracker, published)
    await control.close()


@pytest.mark.asyncio
async def test_a_wrap_up_pauses_the_agent_says_so_and_at_its_deadline_makes_them_available(
    ctl: Control, monkeypatch: pytest.MonkeyPatch
) -> None:
    _wrap_up_of(ctl, 0, monkeypatch)
    ctl.control.start_wrap_up("8101", CALL)

    async def _ended() -> list[Any] | None:
        return ctl.of(WrapUpEnded) or None

    (ended,) = await poll_until(_ended, 5, what="the wrap-up's deadline")
    assert ended == WrapUpEnded(
        node=NODE, linkedid=CALL[1], extension="8101", timed_out=True, at=ended.at
    )
    (started,) = ctl.of(WrapUpStarted)
    assert (started.extension, started.linkedid) == ("8101", CALL[1])
    assert ctl.pauses() == [("PJSIP/8101", "true"), ("PJSIP/8101", "false")]
    assert ctl.link.actions("QueuePause")[0]["Reason"] == "wrap-up"
    assert ctl.control.wrap_up_left("8101") is None


@pytest.mark.asyncio
async def test_the_agent_ending_the_wrap_up_stops_its_deadline(ctl: Control) -> None:
    ctl.control.start_wrap_up("8101", CALL)
    await poll_until(lambda: _some(ctl.of(WrapUpStarted)), 5, what="the wrap-up's start")
    left = ctl.control.wrap_up_left("8101")
    assert left is not None
    assert 0 < left <= 5
    await ctl.control.end_wrap_up("8101", CALL)
    assert [e.timed_out for e in ctl.of(WrapUpEnded)] == [False]
    assert ctl.pauses() == [("PJSIP/8101", "true"), ("PJSIP/8101", "false")]
    assert ctl.control.wrap_up_left("8101") is None
    assert ctl.link.names().count("QueueAdd") == 1  # available: the queue joined again


@pytest.mark.asyncio
async def test_a_wrap_up_called_off_or_replaced_leaves_the_agent_paused(
    ctl: Control, monkeypatch: pytest.MonkeyPatch
) -> None:
    _wrap_up_of(ctl, 0, monkeypatch)
    ctl.control.start_wrap_up("8101", CALL)
    ctl.control.cancel_wrap_up("8101", CALL)  # the customer came back to 8101
    other = CallKey(NODE, "1700000000.2")
    _wrap_up_of(ctl, 60, monkeypatch)
    ctl.control.start_wrap_up("8102", other)
    ctl.control.start_wrap_up("8102", CallKey(NODE, "1700000000.3"))  # replaces
    await poll_until(lambda: _some(ctl.of(WrapUpStarted)), 5, what="the last wrap-up's start")
    assert [e.linkedid for e in ctl.of(WrapUpStarted)] == ["1700000000.3"]
    assert ctl.of(WrapUpEnded) == []
    assert ("PJSIP/8101", "false") not in ctl.pauses()
    assert ctl.control.wrap_up_left("8101") is None


@pytest.mark.asyncio
async def test_the_wrap_up_events_cross_a_process_boundary(ctl: Control) -> None:
    for event in (
        WrapUpStarted(node=NODE, linkedid=CALL[1], extension="8101", seconds=60),
        WrapUpEnded(node=NODE, linkedid=CALL[1], extension="8101", timed_out=True),
    ):
        assert event_from_dict(event.to_dict()) == event


@pytest.mark.asyncio
async def test_the_agents_own_leg_is_found_and_refusals_read_as_the_uis_error(
    ctl: Control,
) -> None:
    with pytest.raises(ControlError, match="no call in progress"):
        await ctl.control.hang_up("8101", None)
    answered_call(ctl.tracker, NODE, CALL[1], "support", "agent-8101")
    with pytest.raises(ControlError, match="your phone is not in this call"):
        await ctl.control.hold("8102", CALL)
    assert ctl.control.in_call("8101", CALL)
    assert not ctl.control.in_call("8102", CALL)
    await ctl.control.hang_up("8101", CALL)
    assert ctl.link.actions("Hangup") == [{"Channel": "PJSIP/8101-00000002"}]
    with pytest.raises(ControlError, match="choose a queue to transfer to: support, sales"):
        await ctl.control.transfer_to_queue("8101", CALL, "nowhere")
    with pytest.raises(ControlError, match="pause reason may not hold") as refused:
        await ctl.control.pause("8101", "lunch|now")
    assert not refused.value.unanswered


@pytest.mark.asyncio
async def test_a_link_that_is_down_is_said_as_the_phone_system_not_answering(
    ctl: Control, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def down(*_: Any, **__: Any) -> Any:
        raise AmiDisconnected("not connected")

    monkeypatch.setattr(ctl.link, "send_action", down)
    with pytest.raises(ControlError, match="the phone system did not answer") as silent:
        await ctl.control.pause("8101", "lunch")
    assert silent.value.unanswered


def _wrap_up_of(ctl: Control, seconds: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Wrap-ups from now on last ``seconds`` (0: the deadline is at once)."""
    settings = ctl.control.settings.model_copy(update={"wrapup_seconds": seconds})
    monkeypatch.setattr(ctl.control, "settings", settings)


async def _some(found: list[Any]) -> list[Any] | None:
    return found or None
