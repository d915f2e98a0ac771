"""`cti serve` as a process: survives an Asterisk restart, stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.asterisk import AsteriskNode
from tests.support.waiting import poll_until

pytestmark = pytest.mark.asterisk

CTI = str(Path(sys.executable).parent / "cti")


@pytest.fixture
def cti_process(fresh_asterisk: AsteriskNode, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [CTI, "serve"], env=fresh_asterisk.server_env(), stdout=log, stderr=subprocess.STDOUT
    )
    yield process
    if process.poll() is None:
        process.kill()
        process.wait(10)
    log.close()


async def _status(port: int) -> dict[str, Any] | None:
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(
                f"http://127.0.0.1:{port}/status", timeout=aiohttp.ClientTimeout(total=2)
            ) as response,
        ):
            body: dict[str, Any] = await response.json()
            return body
    except (aiohttp.ClientError, TimeoutError):
        return None


async def _ami_is(port: int, connected: bool) -> dict[str, Any] | None:
    body = await _status(port)
    return body if body is not None and body["ami"]["connected"] is connected else None


@pytest.mark.asyncio
async def test_server_reconnects_after_asterisk_restart_and_stops_on_sigterm(
    fresh_asterisk: AsteriskNode, cti_process: subprocess.Popen[bytes]
) -> None:
    port = fresh_asterisk.settings.http.port
    await poll_until(lambda: _ami_is(port, True), 20, what="AMI up at start")

    await asyncio.to_thread(fresh_asterisk.instance.stop)
    down = await poll_until(lambda: _ami_is(port, False), 10, what="AMI reported down")
    assert down["ok"] is False

    await asyncio.to_thread(fresh_asterisk.instance.start)
    await asyncio.to_thread(fresh_asterisk.instance.wait_ready)
    ready_at = time.monotonic()
    up = await poll_until(lambda: _ami_is(port, True), 10, what="AMI back up")
    assert time.monotonic() - ready_at < 5.0
    assert up["ami"]["reconnects"] >= 1

    async def _resynced() -> dict[str, Any] | None:
        body = await _status(port)
        return body if body and body["ami"]["resyncs"] >= 2 else None

    await poll_until(_resynced, 10, what="the model rebuilt after the restart")
    assert cti_process.poll() is None, "the server must survive without a restart"

    cti_process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(cti_process.wait, 15) == 0
