"""The server's /agi API for cti-agi: its token, its checks, and cti-agi's client against it."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
import uuid
from typing import Any

import pytest

from cti_server.events import (
    AgentStateChanged,
    CallArrived,
    CallKey,
    IvrFinished,
    SurveyAnswered,
)
from cti_server.ivr.channels import agi_api
from cti_server.ivr.channels.agi import RemoteListening, ServerUnavailable
from cti_server.ivr.channels.agi_client import CtiServerClient
from cti_server.ivr.engine import PinCheck
from cti_server.speech import audiosocket
from cti_server.speech.heard import Heard
from tests.support.agi_api import TOKEN, VIP, Server, listener, running, server
from tests.support.ports import free_port

__all__ = ["listener", "server"]  # fixtures

ARRIVED = CallArrived(
    node="pbx1",
    linkedid="1700000000.1",
    uniqueid="1700000000.1",
    channel="PJSIP/trunk-00000001",
    caller_number="+8613911112222",
    caller_name="王总",
    dialed="100",
)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("token", "status"),
    [(None, 401), ("", 401), ("wrong-token-0123456789", 403), (TOKEN[:-1], 403)],
    ids=["none", "empty", "wrong", "prefix"],
)
async def test_a_request_without_the_token_is_refused(
    server: Server, token: str | None, status: int
) -> None:
    code, body = await server.request("GET", "/customer?caller_id=%2B8613911112222", token)
    assert code == status
    assert "token" in body["error"]
    code, _ = await server.request("POST", "/events", token, json=ARRIVED.to_dict())
    assert code == status
    assert server.published == []


@pytest.mark.asyncio
async def test_without_a_configured_token_the_api_is_off() -> None:
    async with running(token=None) as off:
        code, body = await off.request("GET", "/customer?caller_id=1")
    assert code == 503
    assert "ivr.service_token" in body["error"]


@pytest.mark.asyncio
async def test_the_ivr_events_reach_the_bus(server: Server) -> None:
    finished = IvrFinished(
        node="pbx1",
        linkedid="1700000000.1",
        flow="main",
        outcome="transfer",
        queue="support",
        attributes={"intent": "billing", "tier": "platinum"},
        path=[{"step": "menu", "type": "menu", "seconds": 1.5, "input": "1"}],
        inputs={},
        customer_id=7,
        recordings=["/var/spool/asterisk/recordings/ivr/voicemail-1.wav"],
    )
    survey = SurveyAnswered(node="pbx1", linkedid="x", score=5, comment="/x/comment-1.wav")
    for event in (ARRIVED, finished, survey):
        code, body = await server.request("POST", "/events", json=event.to_dict())
        assert (code, body) == (202, {"accepted": type(event).__name__})
    assert server.published == [ARRIVED, finished, survey]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"type": "AgentStateChanged"}, "not accepted here"),
        ({"type": "CallEnded"}, "not accepted here"),
        ({"type": None}, "not accepted here"),
        ({"version": 2}, "version"),
        ({"data": []}, "must be an object"),
        ({"data": {"node": "pbx1"}}, "Field required"),
        ({"data_extra": {"queue": "support"}}, "has no field queue"),
        ({"data_extra": {"caller_number": 8613911112222}}, "caller_number"),
        ({"data_extra": {"node": "pbx9"}}, "not an Asterisk node"),
        ({"data_extra": {"linkedid": ""}}, "linkedid"),
        ({"data_extra": {"at": "2026-01-01T00:00:00"}}, "time zone"),
    ],
)
async def test_anything_but_a_well_formed_ivr_event_is_refused(
    server: Server, change: dict[str, Any], message: str
) -> None:
    payload = ARRIVED.to_dict()
    payload["data"] = {**payload["data"], **change.pop("data_extra", {})}
    payload.update(change)
    code, body = await server.request("POST", "/events", json=payload)
    assert code == 422
    assert message in body["error"]
    assert server.published == []


@pytest.mark.asyncio
async def test_other_domain_rules_are_checked(server: Server) -> None:
    survey = SurveyAnswered(node="pbx1", linkedid="x", score=9).to_dict()
    agent = AgentStateChanged(
        node="pbx1", agent="sim-1", state="paused", reason="", linkedid=""
    ).to_dict()
    for payload, message in ((survey, "score"), (agent, "AgentStateChanged")):
        code, body = await server.request("POST", "/events", json=payload)
        assert code == 422
        assert message in body["error"]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("caller_id=%2B8613911112222", 400, "linkedid"),
        ("caller_id=%2B8613911112222&node=pbx1&linkedid=", 400, "linkedid"),
        ("caller_id=%2B8613911112222&node=pbx9&linkedid=1.1", 422, "'pbx9'"),
        ("caller_id=" + "9" * 65, 400, "at most 64"),
    ],
    ids=["no-call", "empty-linkedid", "foreign-node", "too-long"],
)
async def test_a_caller_id_is_answered_only_for_a_call_of_this_server(
    server: Server, query: str, status: int, message: str
) -> None:
    """Whom a caller ID names is the call's identification, so the call must be named."""
    code, body = await server.request("GET", f"/customer?{query}")
    assert (code, message in body["error"]) == (status, True)
    assert server.calls_identified == []


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[1, 2]", b"\xff\xfe", b'"text"'],
    ids=["broken", "list", "bytes", "str"],
)
async def test_malformed_json_is_a_400(server: Server, body: bytes) -> None:
    code, answer = await server.request("POST", "/events", data=body)
    assert code == 400
    assert answer["error"]


@pytest.mark.asyncio
async def test_an_oversized_body_is_refused(server: Server) -> None:
    code, _ = await server.request("POST", "/events", data=b"{" + b" " * 300_000 + b"}")
    assert code == 413


@pytest.mark.asyncio
async def test_the_client_asks_what_the_ivr_needs(server: Server) -> None:
    """cti-agi's blocking client, as it runs in its own process (here in a thread)."""
    client = server.client()
    call = CallKey("pbx1", "1700000000.1")
    assert await asyncio.to_thread(_sync, client.for_call(call)("+8613911112222")) == VIP
    assert await asyncio.to_thread(_sync, client.for_call(call)("+8613700000000")) is None
    assert server.calls_identified == [call, call]  # the call's identification answers
    assert await asyncio.to_thread(_sync, client.by_account("12345678")) == VIP
    answer = await asyncio.to_thread(_sync, client.self_service("last_order", VIP))
    assert answer == {"last_order_amount": "1234"}
    assert server.lookups == [("last_order", VIP)]
    with pytest.raises(ServerUnavailable, match="404"):
        await asyncio.to_thread(_sync, client.self_service("nothing", VIP))
    assert await asyncio.to_thread(client.estimated_wait, "support") == 42.0
    assert await asyncio.to_thread(client.callers_ahead, "support") == 3
    await asyncio.to_thread(client.publish, ARRIVED)
    assert server.published == [ARRIVED]


@pytest.mark.asyncio
async def test_the_client_has_a_pin_checked_without_it_in_any_url_or_answer(
    server: Server,
) -> None:
    client = server.client()
    assert await asyncio.to_thread(_sync, client.verify_pin(VIP, "4711")) is PinCheck.MATCH
    assert await asyncio.to_thread(_sync, client.verify_pin(VIP, "4712")) is PinCheck.WRONG
    locked = dataclasses.replace(VIP, customer_id=8)
    assert await asyncio.to_thread(_sync, client.verify_pin(locked, "4711")) is PinCheck.LOCKED
    assert server.pins == [(7, "4711"), (7, "4712"), (8, "4711")]
    for body in ({"customer_id": "7", "pin": "4711"}, {"customer_id": 7, "pin": "1" * 33}, {}):
        code, answer = await server.request("POST", "/pin", json=body)
        assert code == 422
        assert "4711" not in str(answer)
    code, _ = await server.request("POST", "/pin", "wrong-token-0123456789", json={})
    assert code == 403
    assert len(server.pins) == 3


@pytest.mark.asyncio
async def test_the_client_gives_up_on_a_wrong_token_or_no_server(server: Server) -> None:
    with pytest.raises(ServerUnavailable, match="403"):
        await asyncio.to_thread(server.client("wrong-token-0123456789").publish, ARRIVED)
    gone = CtiServerClient(f"http://127.0.0.1:{free_port()}", TOKEN, "pbx1", timeout=1.0)
    with pytest.raises(ServerUnavailable):
        await asyncio.to_thread(gone.estimated_wait, "support")


def _sync(awaitable: Any) -> Any:
    """The client's async lookups do blocking I/O inside: run one to its end in this thread."""
    return asyncio.run(awaitable)


def test_cti_agi_exits_1_without_a_server_and_sets_nothing() -> None:
    """The exit status is Asterisk's AGISTATUS: 1 is FAILURE, and the fallback takes the call."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CTI_")}
    env.update(CTI_HTTP__PORT=str(free_port()), CTI_IVR__SERVICE_TOKEN=TOKEN)
    agi_env = "agi_channel: Local/s@x-1;1\nagi_uniqueid: 1.1\nagi_arg_1: inbound\n\n"
    answers = "200 result=1 (1.1)\n200 result=1 (100)\n"
    done = subprocess.run(
        [sys.executable, "-m", "cti_server.ivr.channels.agi_main"],
        input=(agi_env + answers).encode(),
        env=env,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 1, done.stderr.decode()
    assert b"CTI server unavailable" in done.stderr
    assert b"CTI_QUEUE" not in done.stdout
    assert done.stdout.decode().splitlines() == [
        'GET FULL VARIABLE "${CHANNEL(linkedid)}"',
        'GET FULL VARIABLE "${CTI_DID}"',
    ]


def test_cti_agi_without_a_token_exits_before_the_call() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CTI_")}
    done = subprocess.run(
        [sys.executable, "-m", "cti_server.ivr.channels.agi_main", "survey"],
        input=b"agi_channel: x\n\n",
        env=env,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 1
    assert b"service_token" in done.stderr
    assert done.stdout == b""


WORDS = {"잔액": "1", "상담원": "0"}
LISTEN = {"words": WORDS, "language": "ko", "timeout": 6}


@pytest.mark.asyncio
async def test_cti_agi_learns_which_languages_the_server_hears(
    listener: Server, server: Server
) -> None:
    assert await listener.request("GET", "/speech") == (200, {"languages": ["ko"]})
    assert await server.request("GET", "/speech") == (200, {"languages": []})  # no listener
    code, body = await listener.request("GET", "/speech", "wrong-token-0123456789")
    assert (code, "token" in body["error"]) == (403, True)


@pytest.mark.asyncio
async def test_a_listening_answers_the_word_heard_once_it_has_ended(listener: Server) -> None:
    assert listener.speech is not None
    code, made = await listener.request("POST", "/listen", json=LISTEN)
    assert code == 201
    assert made["address"] == "127.0.0.1:4575"
    assert made["within"] > LISTEN["timeout"]
    assert listener.speech.pending[uuid.UUID(made["id"])].words == WORDS
    # bound to the address cti-agi asked from: the Asterisk beside it streams from there
    assert listener.speech.peers[uuid.UUID(made["id"])] == "127.0.0.1"
    asking = asyncio.create_task(listener.request("GET", f"/listen/{made['id']}"))
    done, _ = await asyncio.wait({asking}, timeout=0.2)
    assert not done  # the GET waits: nothing is heard yet
    listener.speech.hear(made["id"], Heard("1", "잔액"))
    answer = await asyncio.wait_for(asking, 5)
    assert answer == (200, {"id": made["id"], "key": "1", "word": "잔액"})
    assert listener.speech.forgotten == [uuid.UUID(made["id"])]  # the listener let it go
    # kept a short while (a retried GET gets the same), then forgotten
    assert await listener.request("GET", f"/listen/{made['id']}") == answer


@pytest.mark.asyncio
async def test_a_key_while_listening_is_the_answer(listener: Server) -> None:
    assert listener.speech is not None
    _, made = await listener.request("POST", "/listen", json=LISTEN)
    listener.speech.hear(made["id"], Heard("0"))
    assert await listener.request("GET", f"/listen/{made['id']}") == (
        200,
        {"id": made["id"], "key": "0", "word": ""},
    )


@pytest.mark.asyncio
async def test_what_was_heard_is_forgotten_after_a_while(
    listener: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert listener.speech is not None
    _, made = await listener.request("POST", "/listen", json=LISTEN)
    listener.speech.hear(made["id"], Heard("1", "잔액"))
    assert (await listener.request("GET", f"/listen/{made['id']}"))[0] == 200
    monkeypatch.setattr(agi_api, "KEEP_HEARD", 0.0)  # as if its while had passed
    code, body = await listener.request("GET", f"/listen/{made['id']}")
    assert code == 404
    assert "forgotten" in body["error"]


@pytest.mark.asyncio
async def test_a_listening_asterisk_never_joins_ends_in_silence_and_is_let_go(
    listener: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A caller who hung up before AudioSocket ran: the listening ends by itself."""
    assert listener.speech is not None
    monkeypatch.setattr(audiosocket, "HEADER_TIMEOUT", 0.2)
    _, made = await listener.request("POST", "/listen", json=LISTEN)
    assert await listener.request("GET", f"/listen/{made['id']}") == (
        200,
        {"id": made["id"], "key": "", "word": ""},
    )
    assert listener.speech.pending == {}


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"words": {}}, "words"),
        ({"words": ["잔액"]}, "words"),
        ({"words": {"잔액": "12"}}, "words.잔액"),
        ({"words": {"잔액": "x"}}, "words.잔액"),
        ({"words": {"two words": "1"}}, "words"),
        ({"words": {f"w{n}": "1" for n in range(33)}}, "words"),
        ({"language": "kor"}, "language"),
        ({"language": None}, "language"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": 61}, "timeout"),
        ({"timeout": "6"}, "timeout"),
        ({"timeout": True}, "timeout"),
        ({"caller": "x"}, "caller"),
    ],
)
async def test_a_listening_is_asked_for_properly_or_refused_saying_why(
    listener: Server, change: dict[str, Any], message: str
) -> None:
    assert listener.speech is not None
    code, body = await listener.request("POST", "/listen", json={**LISTEN, **change})
    assert code == 422
    assert message in body["error"]
    assert listener.speech.pending == {}


@pytest.mark.asyncio
async def test_no_model_for_the_language_is_said_plainly(listener: Server, server: Server) -> None:
    code, body = await listener.request("POST", "/listen", json={**LISTEN, "language": "en"})
    assert code == 409
    assert "no speech model for language 'en'" in body["error"]
    assert "ko" in body["error"]
    code, body = await server.request("POST", "/listen", json=LISTEN)  # no listener at all
    assert code == 409
    assert "no speech model" in body["error"]


@pytest.mark.asyncio
async def test_only_known_listenings_are_answered(listener: Server) -> None:
    code, body = await listener.request("GET", "/listen/not-an-id")
    assert (code, body["error"]) == (400, "not a listening id")
    code, body = await listener.request("GET", f"/listen/{uuid.uuid4()}")
    assert code == 404
    code, _ = await listener.request("POST", "/listen", "wrong-token-0123456789", json=LISTEN)
    assert code == 403
    assert listener.speech is not None
    assert listener.speech.pending == {}


@pytest.mark.asyncio
async def test_listenings_held_at_once_are_bounded(
    listener: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(agi_api, "MAX_LISTENINGS", 2)
    for _ in range(2):
        assert (await listener.request("POST", "/listen", json=LISTEN))[0] == 201
    code, body = await listener.request("POST", "/listen", json=LISTEN)
    assert code == 503
    assert "listenings held" in body["error"]


@pytest.mark.asyncio
async def test_the_client_has_the_server_listen(listener: Server) -> None:
    """cti-agi's side: the languages, a listening, what it heard; no model: None."""
    speech = listener.speech
    assert speech is not None
    client = listener.client()
    assert await asyncio.to_thread(client.speech_languages) == {"ko"}
    assert await asyncio.to_thread(client.listen, WORDS, "en", 6) is None
    made = await asyncio.to_thread(client.listen, WORDS, "ko", 6)
    assert isinstance(made, RemoteListening)
    assert made.address == "127.0.0.1:4575"
    fetching = asyncio.create_task(asyncio.to_thread(client.heard, made))
    speech.hear(made.id, Heard("0", "상담원"))
    assert await asyncio.wait_for(fetching, 10) == Heard("0", "상담원")
    with pytest.raises(ServerUnavailable, match="404"):
        await asyncio.to_thread(client.heard, RemoteListening(str(uuid.uuid4()), "x", 1.0))
    gone = CtiServerClient(f"http://127.0.0.1:{free_port()}", TOKEN, "pbx1", timeout=1.0)
    with pytest.raises(ServerUnavailable):
        await asyncio.to_thread(gone.listen, WORDS, "ko", 6)
