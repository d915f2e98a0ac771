"""`cti serve` started while PostgreSQL is down: it says so, answers 503, and recovers alone."""

from __future__ import annotations

import json
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from crm_core.api.app import openapi_document
from cti_server.app import build_app
from cti_server.config import load_settings
from tests.support.openapi import ResponseChecker
from tests.support.ports import free_port
from tests.support.postgres import PostgresServer
from tests.support.waiting import poll_until

pytestmark = pytest.mark.postgres


@pytest_asyncio.fixture
async def server_without_database(tmp_path: Path) -> AsyncIterator[tuple[str, int]]:
    if PostgresServer.unavailable_reason() is not None:
        pytest.skip(PostgresServer.unavailable_reason() or "")
    db_port, http_port = free_port(), free_port()
    settings = load_settings(
        None,
        ami={"secret": "x", "port": free_port(), "reconnect_max_delay": 1.0},
        agi={"port": free_port()},
        http={"port": http_port},
        database={"url": f"postgresql+asyncpg://cti@127.0.0.1:{db_port}/cti"},
        recorder={"spool_path": str(tmp_path / "spool.jsonl")},
    )
    runner = web.AppRunner(build_app(settings))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", http_port).start()
    try:
        yield f"http://127.0.0.1:{http_port}", db_port
    finally:
        await runner.cleanup()


async def _get(http: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with http.get(url) as response:
        return response.status, await response.json()


@pytest.mark.asyncio
async def test_status_and_api_report_the_outage_then_recover(
    server_without_database: tuple[str, int],
) -> None:
    base, db_port = server_without_database
    document = ResponseChecker(openapi_document())

    async def _sign_in(http: aiohttp.ClientSession) -> tuple[int, Any]:
        body = {"username": "ann", "password": "whatever1"}
        async with http.post(base + "/api/tokens", json=body) as response:
            text = await response.text()
            document.check("POST", "/api/tokens", response.status, text, dict(response.headers))
            return response.status, json.loads(text)

    async with aiohttp.ClientSession() as http:
        status, body = await _get(http, base + "/status")
        assert status == 503
        assert body["database"]["ok"] is False
        status, body = await _sign_in(http)
        assert (status, body["error"]) == (503, "database_unavailable")

        database = PostgresServer(Path(tempfile.mkdtemp(prefix="cti-pg-outage-")))
        database.start(port=db_port)
        try:
            database.create_database("cti")

            async def _database_ok() -> bool:
                _, body = await _get(http, base + "/status")
                return bool(body["database"]["ok"])

            await poll_until(_database_ok, 30, what="database reported up")
            status, _ = await _sign_in(http)
            assert status == 401  # the database answers: no such user
        finally:
            database.stop()
    assert document.problems == []  # both answers are the ones the OpenAPI document describes
