"""What the hub sends is what the message says, however much of it was encoded ahead of time;
and a browser that stops taking messages is dropped after the send timeout, whether or not
the send needed a timer."""

from __future__ import annotations

import asyncio
import copy
import gc
import json
from typing import Any, cast

import pytest
from aiohttp import web

from agent_ui import ws as ws_module
from agent_ui.sessions import SessionStore, UiSession
from agent_ui.ws import (
    Connection,
    Hub,
    Prepared,
    compact_json,
    encoded,
    encoded_as_made,
    with_fields,
)

RECORD: dict[str, Any] = {
    "lookup": "found",
    "number": "+8613800138000",
    "matches": [{"id": 7, "name": "李娜", "tier": "gold", "language": None}],
    "customer": {"id": 7, "name": "李娜", "tier": "gold", "phones": ["+8613800138000"]},
    "interactions": [{"at": "2026-12-01T10:00:00+00:00", "notes": 'said "hello"\n'}],
}


def _pop() -> Prepared:
    fields = {"type": "pop", "call": {"linkedid": "1.1", "state": "ringing"}, **RECORD}
    fields |= {"ivr": None, "routing": {"intent": "billing"}, "identity": {"verified": False}}
    return Prepared(fields, RECORD, json.dumps(RECORD))


def _as_sent(message: dict[str, Any]) -> Any:
    return json.loads(encoded(message))


def test_a_prepared_pop_reads_as_its_plain_encoding_however_it_was_changed_since() -> None:
    pop = _pop()
    assert _as_sent(pop) == json.loads(json.dumps(pop))

    pop["call"]["state"] = "connected"  # what the desks change on a pop on show
    pop["routing"] = {**pop["routing"], "decided by": "you were free"}
    pop["handover"] = {"from": {"label": "8101"}}
    assert _as_sent(pop) == json.loads(json.dumps(pop))

    copied = copy.deepcopy(pop)  # a transfer's target gets a copy
    copied["call"]["transferred_by"] = "Alice"
    assert _as_sent(copied) == json.loads(json.dumps(copied))
    assert _as_sent(pop)["call"] == {"linkedid": "1.1", "state": "connected"}

    pop["customer"] = {"id": 8, "name": "Chosen by the agent"}  # a field encoded ahead, replaced
    del pop["interactions"]
    assert _as_sent(pop) == json.loads(json.dumps(pop))
    assert _as_sent(pop)["customer"]["name"] == "Chosen by the agent"
    assert "interactions" not in _as_sent(pop)


def test_a_plain_message_and_an_empty_record_encode_as_before() -> None:
    assert _as_sent({"type": "state", "state": "ringing"}) == {"type": "state", "state": "ringing"}
    empty = Prepared({"type": "pop"}, {}, "{}")
    assert _as_sent(empty) == {"type": "pop"}
    only_ahead = Prepared(RECORD, RECORD, json.dumps(RECORD))
    assert _as_sent(only_ahead) == RECORD


class _Transport(asyncio.WriteTransport):
    """A socket's write buffer, as full as a test says."""

    def __init__(self, buffered: int) -> None:
        super().__init__()
        self.buffered = buffered

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return 16 * 1024, 64 * 1024

    def is_closing(self) -> bool:
        return False


class _Socket:
    def __init__(self, *, stuck: bool) -> None:
        self.stuck = stuck
        self.closed = False
        self.sent: list[str] = []

    async def send_str(self, text: str) -> None:
        if self.stuck:  # the browser stopped reading: the writer waits for its buffer to drain
            await asyncio.Event().wait()
        self.sent.append(text)


def _desk(extension: str, socket: _Socket, buffered: int) -> Connection:
    session = UiSession(
        id=f"s{extension}",
        user_id=int(extension),
        username=f"agent{extension}",
        display_name="Agent",
        role="agent",
        extension=extension,
        csrf="x",
        last_seen=0.0,
    )
    return Connection(cast(web.WebSocketResponse, socket), session, "desk", _Transport(buffered))


@pytest.mark.asyncio
async def test_a_browser_that_stopped_reading_is_dropped_after_the_send_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ws_module, "SEND_TIMEOUT", 0.05)
    hub = Hub(SessionStore(600))
    reading, stuck = _Socket(stuck=False), _Socket(stuck=True)
    hub.add(_desk("8101", reading, buffered=0))
    hub.add(_desk("8102", stuck, buffered=60 * 1024))  # its buffer nearly full

    assert await hub.to_extension("8101", {"type": "pop"}) == 1
    assert reading.sent == ['{"type":"pop"}']
    await asyncio.wait_for(hub.to_extension("8102", {"type": "pop"}), 2)  # not held up
    assert not hub.desks_signed_in("8102")
    assert hub.desks_signed_in("8101")


@pytest.mark.asyncio
async def test_a_message_is_sent_at_once_only_if_every_desk_of_the_extension_takes_it_so() -> None:
    hub = Hub(SessionStore(600))
    reading, slow = _Socket(stuck=False), _Socket(stuck=False)
    hub.add(_desk("8101", reading, buffered=0))
    hub.add(_desk("8102", reading, buffered=0))
    hub.add(_desk("8102", slow, buffered=60 * 1024))  # a second tab, its buffer nearly full

    assert await hub.to_extension_at_once("8101", {"type": "pop"})
    assert reading.sent == ['{"type":"pop"}']
    assert not await hub.to_extension_at_once("8102", {"type": "pop"})  # left to the caller
    assert reading.sent == ['{"type":"pop"}']
    assert slow.sent == []
    assert hub.desks_signed_in("8102")
    assert await hub.to_extension_at_once("8103", {"type": "pop"})  # nobody to wait for


def test_a_pop_with_a_field_added_reads_as_its_plain_encoding_and_the_pop_is_unchanged() -> None:
    pop = _pop()
    plain = json.loads(json.dumps(pop))
    added = with_fields(pop, agent_state={"state": "ringing", "reason": ""})
    assert _as_sent(added) == {**plain, "agent_state": {"state": "ringing", "reason": ""}}
    assert _as_sent(pop) == plain  # the pop kept for a tab opened later says no old state
    assert _as_sent(with_fields({"type": "state"}, reason="x")) == {"type": "state", "reason": "x"}


def test_a_pop_sent_as_it_is_made_reads_as_its_plain_encoding_with_its_added_fields() -> None:
    own = {"type": "pop", "call": {"linkedid": "1.1", "caller_name": '"</script>\u2028李'}}
    made = Prepared.made(own, RECORD, json.dumps(RECORD)[1:-1])
    state = {"state": "ringing", "reason": ""}
    plain = json.loads(json.dumps({**own, **RECORD}))
    assert json.loads(made.as_made(agent_state=state)) == {**plain, "agent_state": state}
    assert json.loads(made.as_made()) == plain == _as_sent(made)
    assert json.loads(encoded_as_made(dict(made), agent_state=state)) == {
        **plain,
        "agent_state": state,
    }
    assert "agent_state" not in made  # the pop kept on show says no old state
    # no blanks where json.dumps puts them: a tenth of a pop's bytes
    assert made.as_made().startswith('{"type":"pop","call":{"linkedid":"1.1","caller_name":')


def test_a_pop_made_keeps_no_second_object_of_its_own_for_the_collector_to_walk() -> None:
    """A pop on show is kept by its desk: 1,000 of them at 1,000 rings at once, each object
    they keep walked by the garbage collector as the rings come."""
    own = {"type": "pop", "call": {"linkedid": "1.1"}}
    made = Prepared.made(own, RECORD, json.dumps(RECORD)[1:-1])
    assert not hasattr(made, "__dict__")
    assert all(kept is not own for kept in gc.get_referents(made))
    assert made.own == own
    assert copy.deepcopy(made).as_made() == made.as_made()
    assert made.with_fields(x=1).own is None  # a copy is no longer as made


def test_a_message_is_written_as_json_dumps_writes_it_without_blanks() -> None:
    message: dict[Any, Any] = {
        **RECORD,
        "n": [1, 2.5, None, True],
        3: "int key",
        "odd": '\u2028</script>"\\',
    }
    assert compact_json(message) == json.dumps(message, separators=(",", ":"))
    assert compact_json("just text") == '"just text"'
    with pytest.raises(TypeError, match="not JSON serializable"):
        compact_json({"when": object()})
