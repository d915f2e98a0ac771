"""Hostile input the probe of the demo found, and text that spoofs what the screen shows: each
a clear 4xx naming the problem, nothing stored, no traceback in the log."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import BaseTestServer, TestServer
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.models import Customer, Interaction
from crm_core.text_rules import checked_text, neutralised, unsafe_character
from cti_server.web.server_log import ServerLog
from tests.support.crm_api import CrmApi, tracebacks

Sessions = async_sessionmaker[AsyncSession]

SPOOFS = {
    "right-to-left override": ("invoice\u202eslx.exe", "a bidirectional control (U+202E)"),
    "left-to-right embedding": ("\u202aBob", "a bidirectional control (U+202A)"),
    "pop directional formatting": ("Bob\u202c", "a bidirectional control (U+202C)"),
    "right-to-left isolate": ("\u2067Bob", "a bidirectional control (U+2067)"),
    "pop directional isolate": ("Bob\u2069", "a bidirectional control (U+2069)"),
    "left-to-right mark": ("Bob\u200e", "a bidirectional control (U+200E)"),
    "right-to-left mark": ("Bob\u200f", "a bidirectional control (U+200F)"),
    "arabic letter mark": ("Bob\u061c", "a bidirectional control (U+061C)"),
    "zero-width space": ("a\u200bd\u200bm\u200bi\u200bn", "a zero-width character (U+200B)"),
    "zero-width non-joiner": ("ad\u200cmin", "a zero-width character (U+200C)"),
    "zero-width joiner": ("ad\u200dmin", "a zero-width character (U+200D)"),
    "word joiner": ("ad\u2060min", "a zero-width character (U+2060)"),
    "byte order mark": ("\ufeffadmin", "a zero-width character (U+FEFF)"),
    "C1 next line": ("Bob\x85Smith", "a control character (U+0085)"),
    "C1 control sequence introducer": ("Bob\x9b31m", "a control character (U+009B)"),
    "C0 escape": ("Bob\x1b[31m", "a control character (U+001B)"),
    "delete": ("Bob\x7f", "a control character (U+007F)"),
}
HARMLESS = "José 张伟 محمد 🙂 <b>O'Brien</b>"  # right-to-left script itself is fine


async def _customers(db: Sessions) -> int:
    async with db() as session:
        return int(await session.scalar(select(func.count()).select_from(Customer)) or 0)


def test_the_rule_names_each_class_of_character_and_neutralises_it() -> None:
    for text, named in SPOOFS.values():
        assert unsafe_character(text) == named
        with pytest.raises(ValueError, match=r"U\+"):
            checked_text(text)
        assert unsafe_character(neutralised(text)) is None
    assert unsafe_character("\ud800") == "a lone surrogate (U+D800)"
    assert unsafe_character(HARMLESS + "\tline\r\nbreak") is None
    assert neutralised("a\u200bdmin") == "a dmin"  # visibly not "admin"
    assert neutralised("Eve\r\nAction: x\t", one_line=True) == "Eve  Action: x "


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", SPOOFS)
async def test_the_api_refuses_spoofing_text_in_every_text_field_naming_it(
    api: CrmApi, crm: Sessions, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    text, named = SPOOFS[kind]
    status, customer = await api.call("POST", "/customers", json={"name": HARMLESS})
    assert status == 201
    writes: list[tuple[str, str, str, dict[str, Any], str]] = [
        ("POST", "/customers", "agent", {"name": text}, "name"),
        ("POST", "/customers", "agent", {"name": "Ann", "notes": text}, "notes"),
        ("POST", "/customers", "agent", {"name": "Ann", "tags": [text]}, "tags.0"),
        ("PATCH", f"/customers/{customer['id']}", "agent", {"name": text}, "name"),
        (
            "POST",
            "/cases",
            "supervisor",
            {
                "customer_id": customer["id"],
                "category": "billing",
                "severity": "low",
                "summary": text,
            },
            "summary",
        ),
        (
            "POST",
            "/follow-ups",
            "agent",
            {"customer_id": customer["id"], "due_at": "2030-01-01T10:00:00Z", "note": text},
            "note",
        ),
        (
            "POST",
            "/interactions",
            "supervisor",
            {"node": "pbx1", "linkedid": "1.1", "caller_name": text, "notes": text},
            "caller_name",
        ),
        (
            "POST",
            "/users",
            "admin",
            {"username": "eve", "password": "long enough", "role": "agent", "display_name": text},
            "display_name",
        ),
    ]
    for method, path, who, body, field in writes:
        status, answer = await api.call(method, path, who=who, json=body)
        assert status == 422, (path, answer)
        fields = {f["field"]: f["message"] for f in answer["fields"]}
        assert field in fields, (path, answer)
        assert named in fields[field]
    status, stored = await api.call("GET", f"/customers/{customer['id']}")
    assert stored["name"] == HARMLESS
    assert await _customers(crm) == 1
    async with crm() as session:
        assert await session.scalar(select(func.count()).select_from(Interaction)) == 0
    assert tracebacks(caplog.records) == []


async def _raw(api: CrmApi, request: bytes) -> tuple[int, Any]:
    """``request`` as bytes on a new connection (a client library would encode a header)."""
    return await _raw_to(api.client.server, request)


async def _raw_to(server: BaseTestServer, request: bytes) -> tuple[int, Any]:
    if b"Connection:" not in request:
        request = request.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1)
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(request)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    return status, json.loads(body) if body.startswith(b"{") else body.decode()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "token", [b"abc\xff", b"\xc3\x28", b"abc\tdef", b"\xe2\x80\xaeabc", b"a" * 300]
)
async def test_a_bearer_token_that_is_not_printable_ascii_is_a_401_saying_so(
    api: CrmApi, token: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    status, answer = await _raw(
        api,
        b"GET /api/customers HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Authorization: Bearer " + token + b"\r\n\r\n",
    )
    assert (status, answer["error"]) == (401, "unauthorized")
    assert "malformed" in answer["message"]
    assert tracebacks(caplog.records) == []


@pytest.mark.asyncio
async def test_a_request_the_http_parser_refuses_is_one_line_in_the_log_not_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """As `cti serve` runs its server (``logger=ServerLog()``): a NUL in a header is the
    client's fault, a 400 and one INFO line; a handler's crash is still an ERROR with its
    traceback."""

    async def crash(_request: web.Request) -> web.Response:
        raise RuntimeError("a bug of ours")

    app = web.Application()
    app.router.add_get("/crash", crash)
    server = TestServer(app)
    await server.start_server(logger=ServerLog())
    caplog.set_level(logging.INFO)
    try:
        status, _ = await _raw_to(
            server, b"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\x00b\r\n\r\n"
        )
        assert status == 400
        assert tracebacks(caplog.records) == []
        (line,) = [r for r in caplog.records if r.name == "aiohttp.server"]
        assert line.levelno == logging.INFO
        assert "400" in line.getMessage()
        assert "\n" not in line.getMessage()
        status, _ = await _raw_to(server, b"GET /crash HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == 500
        assert tracebacks(caplog.records) == ["Error handling request from 127.0.0.1"]
    finally:
        await server.close()


@pytest.mark.asyncio
async def test_a_malformed_token_does_not_stop_a_sign_in(api: CrmApi) -> None:
    body = b'{"username": "agent", "password": "agent-password"}'
    status, answer = await _raw(
        api,
        b"POST /api/tokens HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Authorization: Bearer abc\xff\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body,
    )
    assert status == 201, answer  # a route open to all ignores a token it cannot read
    assert answer["token"]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ('{"name": "Ann", "organisation_id": ' + "9" * 5000 + "}", "too many digits"),
        ('{"name": "Ann", "notes": "\\ud800"}', "lone surrogate"),
        ('{"name": "\\udfff\\ud800"}', "lone surrogate"),
        ('{"name": "Ann", "consent": {"\\ud83d": true}}', "lone surrogate"),
    ],
)
async def test_a_body_python_cannot_read_is_a_400_naming_the_problem(
    api: CrmApi, crm: Sessions, body: str, problem: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    status, answer = await api.call(
        "POST", "/customers", data=body, headers={"Content-Type": "application/json"}
    )
    assert (status, answer["error"]) == (400, "bad_request")
    assert problem in answer["message"]
    assert await _customers(crm) == 0
    assert tracebacks(caplog.records) == []


@pytest.mark.asyncio
async def test_a_password_with_a_lone_surrogate_is_refused_not_hashed(
    api: CrmApi, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    status, answer = await api.call(
        "POST",
        "/tokens",
        who=None,
        data='{"username": "agent", "password": "pass\\udc80word"}',
        headers={"Content-Type": "application/json"},
    )
    assert (status, answer["error"]) == (400, "bad_request")
    assert tracebacks(caplog.records) == []
