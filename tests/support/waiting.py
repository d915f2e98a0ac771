"""Waiting on events and conditions with a deadline: tests never sleep a fixed time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from panoramisk.message import Message

T = TypeVar("T")


async def poll_until(
    check: Callable[[], Awaitable[T | None]],
    timeout: float,
    interval: float = 0.05,
    what: str = "condition",
) -> T:
    """Call ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        await asyncio.sleep(interval)


class EventLog:
    """Every AMI event an observer connection saw, with waits on matching ones."""

    def __init__(self) -> None:
        self.events: list[Message] = []
        self._waiters: list[tuple[Callable[[Message], bool], asyncio.Future[Message]]] = []

    def __call__(self, message: Message) -> None:
        self.events.append(message)
        for predicate, future in list(self._waiters):
            if not future.done() and predicate(message):
                future.set_result(message)

    async def wait_for(
        self, predicate: Callable[[Message], bool], timeout: float, what: str = "AMI event"
    ) -> Message:
        """The first event (already seen or still to come) that matches ``predicate``."""
        for event in self.events:
            if predicate(event):
                return event
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        entry = (predicate, future)
        self._waiters.append(entry)
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            seen = sorted({str(e.get("Event")) for e in self.events})
            raise AssertionError(f"{what} not seen within {timeout} s; saw {seen}") from None
        finally:
            self._waiters.remove(entry)


def event_is(name: str, **headers: str) -> Callable[[Message], bool]:
    """Predicate: an event named ``name`` whose headers have the given values."""

    def _match(message: Message) -> bool:
        if message.get("Event") != name:
            return False
        return all(message.get(key) == value for key, value in headers.items())

    return _match


def agent_complete(linkedid: str) -> Callable[[Message], bool]:
    """AgentComplete of a call; it lacks the caller's ids when the caller's channel went first."""

    def _match(message: Message) -> bool:
        return message.get("Event") == "AgentComplete" and linkedid in (
            message.get("Linkedid"),
            message.get("DestLinkedid"),
        )

    return _match
