"""`cti serve` as a process: survives an Asterisk restart, stops cleanly on SIGTERM or SIGINT;
the `cti asterisk` commands that run the development Asterisk."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from cti_server.asterisk.local import AsteriskChroot, AsteriskInstance
from cti_server.config import serve_environment
from tests.support.asterisk import AsteriskNode, node_settings, require_chroot
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


@pytest.mark.asyncio
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
async def test_serve_stops_cleanly_on_a_signal_leaving_no_task_behind(
    asterisk_node: AsteriskNode, tmp_path: Path, signum: signal.Signals
) -> None:
    """Ctrl-C and a service manager's stop both end every part the server started: exit 0 and
    nothing in the log about tasks destroyed while pending or unclosed connections."""
    settings = node_settings(f"s{int(signum)}", tmp_path)
    env = asterisk_node.server_env()
    env.update(
        CTI_HTTP__PORT=str(settings.http.port),
        CTI_AGI__PORT=str(settings.agi.port),
        CTI_SPEECH__PORT=str(settings.speech.port),
        CTI_DATABASE__URL=settings.database.url,
        CTI_RECORDER__SPOOL_PATH=str(settings.recorder.spool_path),
        PYTHONASYNCIODEBUG="1",
    )
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: ASYNC220 - the test owns a child server
            [CTI, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            try:
                await poll_until(
                    lambda: _ami_is(settings.http.port, True), 60, what="the server up, linked"
                )
            except AssertionError:
                raise AssertionError(log_path.read_text(errors="replace")[-3000:]) from None
            process.send_signal(signum)
            assert await asyncio.to_thread(process.wait, 15) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(10)
    text = log_path.read_text(errors="replace")
    for trouble in ("Task was destroyed", "Traceback", "Unclosed", "was never awaited"):
        assert trouble not in text, text[-3000:]


def test_cti_asterisk_up_status_down_commands(tmp_path: Path) -> None:
    """The development commands a user types: up starts and waits until ready, status says
    running (exit 0) or stopped (exit 1), down stops it."""
    require_chroot()
    name = f"c{os.getpid()}"
    settings = node_settings(name, tmp_path)
    env = {**serve_environment(settings), "CTI_ASTERISK__INSTANCE": name}

    def cti(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CTI, "asterisk", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    try:
        up = cti("up")
        assert up.returncode == 0, up.stderr
        assert f"Asterisk instance '{name}' ready" in up.stdout
        status = cti("status")
        assert status.returncode == 0, status.stderr
        assert "running, pid" in status.stdout
        cli = AsteriskInstance(AsteriskChroot(), name, settings).cli("core show uptime")
        assert "System uptime" in cli.stdout
        down = cti("down")
        assert down.returncode == 0, down.stderr
        assert "stopped" in down.stdout
        after = cti("status")
        assert after.returncode == 1
        assert f"instance '{name}': stopped" in after.stdout
    finally:
        AsteriskInstance(AsteriskChroot(), name, settings).stop()
