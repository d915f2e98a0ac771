"""The event stream over a real websocket: tokens, topics, and what each role may see."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from jsonschema import Draft202012Validator
from sqlalchemy import update

from crm_core.models import ApiToken
from cti_server.bus import MemoryBus
from cti_server.integrations.access import Topics, Viewer
from cti_server.integrations.stream import UNAUTHORIZED, StreamClient, TokenUser
from cti_server.integrations.translate import Translator
from tests.support import domain_events as make
from tests.support.event_stream import Stream
from tests.support.waiting import poll_until

DOCS = Path(__file__).resolve().parents[3] / "docs" / "events"


def _validate(event: dict[str, Any]) -> None:
    schema = json.loads((DOCS / f"{event['type']}.v{event['version']}.json").read_text("utf-8"))
    Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER).validate(event)


async def _events(ws: aiohttp.ClientWebSocketResponse, count: int) -> list[dict[str, Any]]:
    """The next ``count`` public events (control messages have no dot in their type)."""
    got: list[dict[str, Any]] = []
    while len(got) < count:
        message = await ws.receive_json(timeout=5)
        if "." in message["type"]:
            _validate(message)
            got.append(message)
    return got


def _call(bus: MemoryBus, linkedid: str, agent: str) -> None:
    for event in (
        make.arrived(linkedid),
        make.ringing(linkedid, agent),
        make.answered(linkedid, agent),
        make.complaint(linkedid, during_call=True),
        make.ended(linkedid, agent),
    ):
        bus.publish(event)


@pytest.mark.asyncio
async def test_a_valid_token_receives_its_topics_and_nothing_else(stream: Stream) -> None:
    ws = await stream.connect("sup", "?topics=complaint.detected")
    _call(stream.bus, "c1", "agent-1001")
    complaint = (await _events(ws, 1))[0]
    assert complaint["type"] == "complaint.detected"
    assert complaint["data"]["evidence"][0]["text"] == "you charged me twice"
    await ws.send_json({"type": "subscribe", "topics": ["call.*"]})
    assert await ws.receive_json(timeout=5) == {"type": "subscribed", "topics": ["call.*"]}
    _call(stream.bus, "c2", "agent-1002")
    got = await _events(ws, 4)
    assert [e["type"] for e in got] == [
        "call.arrived",
        "call.ringing",
        "call.answered",
        "call.ended",
    ]  # c2's complaint is no longer among its topics, and nothing of c1 came late
    assert {e["data"]["call_id"] for e in got} == {"c2"}
    await ws.send_json({"type": "subscribe", "topics": ["calls.*"]})
    error = await ws.receive_json(timeout=5)
    assert error["type"] == "error"
    assert "matches no event" in error["message"]
    await ws.close()


@pytest.mark.asyncio
async def test_no_token_a_bad_one_or_one_in_the_address_is_refused(stream: Stream) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as bad:
        await stream.http.ws_connect(stream.url, headers={"Authorization": "Bearer nope"})
    assert bad.value.status == 401
    with pytest.raises(aiohttp.WSServerHandshakeError) as in_address:
        await stream.http.ws_connect(f"{stream.url}?token={stream.tokens['sup']}")
    assert in_address.value.status == 400
    with pytest.raises(aiohttp.WSServerHandshakeError) as bad_topics:
        await stream.connect("sup", "?topics=nothing.here")
    assert bad_topics.value.status == 400
    for first in ({"type": "subscribe", "topics": ["call.*"]}, {"type": "auth", "token": "x"}):
        ws = await stream.connect(None)
        await ws.send_json(first)
        assert (await ws.receive()).type == aiohttp.WSMsgType.CLOSE
        assert ws.close_code == UNAUTHORIZED


@pytest.mark.asyncio
async def test_the_token_may_come_as_the_first_message(stream: Stream) -> None:
    ws = await stream.connect(None, "?topics=call.ended")
    await ws.send_json({"type": "auth", "token": stream.tokens["sup"]})
    welcome = await ws.receive_json(timeout=5)
    assert (welcome["type"], welcome["user"], welcome["topics"]) == (
        "welcome",
        "sup",
        ["call.ended"],
    )
    _call(stream.bus, "c1", "agent-1001")
    assert (await _events(ws, 1))[0]["type"] == "call.ended"
    await ws.close()


@pytest.mark.asyncio
async def test_an_agent_sees_only_their_own_calls_and_complaints(stream: Stream) -> None:
    alice = await stream.connect("alice", "?topics=*")
    supervisor = await stream.connect("sup", "?topics=*")
    _call(stream.bus, "bobs", "agent-1002")
    _call(stream.bus, "alices", "agent-1001")
    seen = await _events(alice, 4)
    assert [(e["type"], e["data"]["call_id"]) for e in seen] == [
        ("call.ringing", "alices"),
        ("call.answered", "alices"),
        ("complaint.detected", "alices"),
        ("call.ended", "alices"),
    ]  # nothing of bob's call, and no call still in the IVR
    everything = await _events(supervisor, 10)
    assert {e["data"]["call_id"] for e in everything} == {"bobs", "alices"}
    assert sum(e["type"] == "complaint.detected" for e in everything) == 2
    await alice.close()
    await supervisor.close()


@pytest.mark.asyncio
async def test_a_revoked_token_is_disconnected(stream: Stream) -> None:
    ws = await stream.connect("sup", "?topics=*")
    async with stream.db() as session, session.begin():
        await session.execute(update(ApiToken).values(revoked=True))
    message = await ws.receive(timeout=5)
    assert message.type == aiohttp.WSMsgType.CLOSE
    assert ws.close_code == UNAUTHORIZED


@pytest.mark.asyncio
async def test_admins_read_the_delivery_figures(stream: Stream) -> None:
    status_url = stream.url.replace("/stream", "/status")
    for who, expected in (("root", 200), ("sup", 403)):
        headers = {"Authorization": f"Bearer {stream.tokens[who]}"}
        async with stream.http.get(status_url, headers=headers) as reply:
            assert reply.status == expected
    async with stream.http.get(status_url) as reply:
        assert reply.status == 401
    ws = await stream.connect("sup", "?topics=*")
    headers = {"Authorization": f"Bearer {stream.tokens['root']}"}
    async with stream.http.get(status_url, headers=headers) as reply:
        body = await reply.json()
    assert (body["ok"], body["streams"], body["webhooks"]) == (True, 1, [])
    await ws.close()

    async def closed() -> bool:  # a closed stream is no longer counted
        async with stream.http.get(status_url, headers=headers) as reply:
            return bool((await reply.json())["streams"] == 0)

    await poll_until(closed, 5, what="the closed stream gone from the status")


def test_a_slow_stream_client_loses_its_oldest_events_and_counts_them() -> None:
    viewer = TokenUser("sup", Viewer(role="supervisor"))
    client = StreamClient(viewer, Topics.parse(["call.ended"]), maxsize=3)
    translator = Translator()
    for n in range(5):
        for outgoing in translator.translate(make.ended(f"c{n}", "agent-1001")):
            client.offer(outgoing)
    kept = [client.queue.get_nowait().event.data.call_id for _ in range(client.queue.qsize())]
    assert (kept, client.dropped) == (["c2", "c3", "c4"], 2)
