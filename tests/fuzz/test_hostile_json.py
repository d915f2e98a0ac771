"""JSON that Python's parser cannot read although it is well formed (nested deeper than its
recursion, a number longer than its int conversion limit), sent to every other JSON reader the
server has: the event stream's websocket and cti-agi's HTTP API answer it as malformed, with no
traceback in the log and the socket still answering."""

from __future__ import annotations

import logging

import pytest

from tests.support.agi_api import Server, server
from tests.support.crm_api import tracebacks
from tests.support.event_stream import Stream, stream

UNREADABLE = ["[" * 5_000, '{"type": "subscribe", "topics": ' + "9" * 5000 + "}"]

__all__ = ["server", "stream"]  # fixtures


@pytest.mark.asyncio
@pytest.mark.parametrize("raw", UNREADABLE, ids=["deep", "long-number"])
async def test_the_event_stream_refuses_unreadable_json_and_stays_open(
    stream: Stream, raw: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    ws = await stream.connect("sup")
    await ws.send_str(raw)
    refused = await ws.receive_json(timeout=5)
    assert refused["type"] == "error"
    await ws.send_json({"type": "subscribe", "topics": ["call.*"]})
    assert (await ws.receive_json(timeout=5))["type"] != "error"
    await ws.close()
    unauthenticated = await stream.connect(None)
    await unauthenticated.send_str(raw)  # in place of the first message's token
    closing = await unauthenticated.receive(timeout=5)
    assert closing.type.name in ("CLOSE", "CLOSED", "CLOSING")
    assert tracebacks(caplog.records) == []


@pytest.mark.asyncio
@pytest.mark.parametrize("raw", UNREADABLE, ids=["deep", "long-number"])
async def test_the_agi_api_answers_unreadable_json_with_a_400(
    server: Server, raw: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    code, answer = await server.request("POST", "/events", data=raw.encode())
    assert code == 400
    assert "malformed JSON" in answer["error"]
    assert tracebacks(caplog.records) == []
