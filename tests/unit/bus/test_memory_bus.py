"""The in-process bus routes each event to the subscriptions of its type, found once per type:
the routing must follow subscribers as they come and go, and take subclasses as isinstance
does (a subscription to ``DomainEvent`` hears everything)."""

from __future__ import annotations

import asyncio

import pytest

from cti_server.bus import MemoryBus, Subscription
from cti_server.events import AgentRinging, CallQueued, DomainEvent
from tests.support import domain_events as make


async def _heard(subscription: Subscription) -> list[DomainEvent]:
    """What the subscription has queued (publishing is synchronous: nothing more is coming)."""
    events = []
    while True:
        try:
            events.append(await subscription.get(timeout=0.01))
        except TimeoutError:
            return events


@pytest.mark.asyncio
async def test_each_subscription_hears_the_types_it_asked_for_as_subscribers_come_and_go() -> None:
    bus = MemoryBus()
    rings = bus.subscribe(AgentRinging)
    everything = bus.subscribe()
    base = bus.subscribe(DomainEvent)
    first, second = make.ringing("1.1", "agent-8101"), make.queued("1.2")
    bus.publish(first)
    bus.publish(second)  # each type is routed now, and remembered
    queues = bus.subscribe(CallQueued, AgentRinging)  # a newcomer hears the next ones
    third, fourth = make.queued("1.3"), make.ringing("1.4", "agent-8102")
    bus.publish(third)
    rings.close()  # one that leaves hears no more
    bus.publish(fourth)

    assert await _heard(rings) == [first]
    assert await _heard(everything) == [first, second, third, fourth]
    assert await _heard(base) == [first, second, third, fourth]
    assert await _heard(queues) == [third, fourth]
    assert bus.status()["subscribers"] == 3
    assert bus.published == 4


@pytest.mark.asyncio
async def test_a_full_subscription_drops_its_oldest_event_and_the_others_hear_them_all() -> None:
    bus = MemoryBus()
    small = bus.subscribe(CallQueued, maxsize=2)
    large = bus.subscribe(CallQueued)
    events = [make.queued(f"2.{i}") for i in range(3)]
    for event in events:
        bus.publish(event)
    assert await _heard(small) == events[1:]
    assert small.dropped == 1
    assert await _heard(large) == events
    assert bus.status()["dropped"] == 1


@pytest.mark.asyncio
async def test_listeners_hear_their_types_before_any_subscriber() -> None:
    bus = MemoryBus()
    order: list[str] = []
    subscription = bus.subscribe(AgentRinging)

    def listener(event: DomainEvent) -> None:
        assert isinstance(event, AgentRinging)
        order.append(f"listener {event.linkedid}")

    bus.listen((AgentRinging,), listener)
    bus.publish(make.queued("3.1"))
    bus.publish(make.ringing("3.2", "agent-8101"))
    heard = await _heard(subscription)
    order += [f"subscriber {e.linkedid}" for e in heard if isinstance(e, AgentRinging)]
    assert order == ["listener 3.2", "subscriber 3.2"]
    assert len(heard) == 1


@pytest.mark.asyncio
async def test_a_waiting_reader_wakes_for_the_next_event_and_a_peek_leaves_it_queued() -> None:
    bus = MemoryBus()
    subscription = bus.subscribe(AgentRinging)
    waiting = asyncio.ensure_future(subscription.get(timeout=10))
    await asyncio.sleep(0)  # the reader is waiting now
    first, second = make.ringing("4.1", "agent-8101"), make.ringing("4.2", "agent-8102")
    assert subscription.peek() is None
    bus.publish(first)
    bus.publish(second)
    assert await waiting is first
    assert subscription.peek() is second
    assert await subscription.get(timeout=1) is second
    assert subscription.peek() is None
    with pytest.raises(TimeoutError):
        await subscription.get(timeout=0.01)
    bus.publish(first)  # a reader that timed out does not stop the next one hearing
    assert await subscription.get(timeout=1) is first


@pytest.mark.asyncio
async def test_a_muted_type_is_not_queued_until_unmuted_and_the_others_go_on() -> None:
    bus = MemoryBus()
    board = bus.subscribe(CallQueued, AgentRinging)
    desks = bus.subscribe(AgentRinging)
    board.mute(AgentRinging)
    muted, queued = make.ringing("5.1", "agent-8101"), make.queued("5.2")
    bus.publish(muted)
    bus.publish(queued)
    board.mute()  # unmuted: the next ring is heard
    heard = make.ringing("5.3", "agent-8101")
    bus.publish(heard)
    assert await _heard(board) == [queued, heard]
    assert await _heard(desks) == [muted, heard]
