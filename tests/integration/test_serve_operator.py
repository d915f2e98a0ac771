"""What an operator sees of a running `cti serve` while Asterisk is down, no Asterisk needed:
liveness apart from readiness, the version, the outage at WARNING without -v, an access log
without query strings, JSON log lines on request."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from cti_server.config import Settings, load_settings, serve_environment
from cti_server.health.version import release
from tests.support.ports import free_port
from tests.support.waiting import poll_until

CTI = str(Path(sys.executable).parent / "cti")


@dataclass
class Running:
    settings: Settings
    process: subprocess.Popen[bytes]
    log: Path

    async def get(self, path: str) -> tuple[int, Any]:
        url = f"http://127.0.0.1:{self.settings.http.port}{path}"
        try:
            async with (
                aiohttp.ClientSession() as http,
                http.get(url, timeout=aiohttp.ClientTimeout(total=3)) as response,
            ):
                return response.status, await response.json()
        except (aiohttp.ClientError, TimeoutError):
            return 0, None

    async def wait_alive(self) -> None:
        async def _alive() -> bool:
            status, _ = await self.get("/healthz")
            return status == 200

        try:
            await poll_until(_alive, 30, what="cti serve answering /healthz")
        except AssertionError:
            raise AssertionError(self.log.read_text(errors="replace")[-3000:]) from None

    def stop(self) -> str:
        """SIGTERM, exit 0, and everything it logged."""
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(15) == 0
        return self.log.read_text(errors="replace")


@contextmanager
def serving(
    tmp_path: Path, *args: str, database_url: str = "", bus: str = "memory", **env: str
) -> Iterator[Running]:
    """`cti serve ARGS` with AMI pointing at a closed port (Asterisk down) and its own database."""
    settings = load_settings(
        None,
        ami={"secret": "x", "port": free_port()},
        agi={"port": free_port()},
        http={"port": free_port()},
        speech={"port": free_port()},
        database={"url": database_url or f"sqlite+aiosqlite:///{tmp_path / 'cti.db'}"},
        recorder={"spool_path": str(tmp_path / "spool.jsonl")},
        bus={"backend": bus, "redis_url": f"redis://127.0.0.1:{free_port()}/0"},
    )
    env = {"CTI_BUS__BACKEND": bus, "CTI_BUS__REDIS_URL": settings.bus.redis_url, **env}
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [CTI, "serve", *args],
            env={**serve_environment(settings), **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield Running(settings, process, log)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def test_cti_version_is_the_installed_release() -> None:
    result = subprocess.run([CTI, "--version"], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == f"cti {release()}"
    assert release() != "unknown"


@pytest.mark.asyncio
async def test_liveness_answers_while_readiness_says_asterisk_is_down(tmp_path: Path) -> None:
    """An orchestrator restarts on /healthz and routes on /status: Asterisk down is not a
    reason to restart the server."""
    with serving(tmp_path) as server:
        await server.wait_alive()

        alive, body = await server.get("/healthz")
        assert (alive, body) == (200, {"ok": True, "version": release()})
        ready, status = await server.get("/status")
        assert ready == 503
        assert status["ami"]["connected"] is False
        assert status["version"] == release()
        server.stop()


@pytest.mark.asyncio
async def test_asterisk_down_is_a_warning_without_v_and_requests_are_logged_without_query(
    tmp_path: Path,
) -> None:
    with serving(tmp_path) as server:
        await server.wait_alive()
        await server.get("/status?token=s3cr3t-in-the-query")
        log = server.stop()

    ami_port = server.settings.ami.port
    assert f"WARNING cti_server.telephony.ami_client: AMI pbx1 at 127.0.0.1:{ami_port} " in log
    assert " DEBUG " not in log
    assert '"GET /status" 503' in log
    assert '"GET /healthz" 200' in log
    assert "s3cr3t" not in log


@pytest.mark.asyncio
async def test_asterisk_database_and_redis_unreachable_are_each_a_warning_without_v(
    tmp_path: Path,
) -> None:
    """The server runs on (503 until they come back), and the log says what is down and where:
    once, not once per retry."""
    database = f"postgresql+asyncpg://cti@127.0.0.1:{free_port()}/cti"
    with serving(tmp_path, database_url=database, bus="redis") as server:
        await server.wait_alive()
        ready, status = await server.get("/status")
        assert ready == 503
        assert status["database"]["ok"] is False
        redis = server.settings.bus.redis_url.removeprefix("redis://").removesuffix("/0")
        refused = f"Redis unavailable: Error 111 connecting to {redis}"
        await poll_until(
            lambda: _logged_twice(server.log, refused), 10, what="Redis refused, then again"
        )
        log = server.stop()

    warnings = [line for line in log.splitlines() if " WARNING " in line]
    ami = f"AMI pbx1 at 127.0.0.1:{server.settings.ami.port} unavailable"
    assert len([line for line in warnings if ami in line]) == 1, log
    db = [line for line in warnings if f"database {database} not ready" in line]
    assert len(db) == 1, log
    assert [
        line for line in warnings if f"Redis unavailable: Error 111 connecting to {redis}" in line
    ]


async def _logged_twice(log: Path, text: str) -> bool:
    """True once ``text`` was logged twice: the others have had their retries too by then."""
    return (await asyncio.to_thread(log.read_text, errors="replace")).count(text) >= 2


@pytest.mark.asyncio
async def test_json_log_lines_and_verbose_after_the_command(tmp_path: Path) -> None:
    with serving(tmp_path, "--log-format", "json", "-v") as server:
        await server.wait_alive()
        log = server.stop()

    entries = [json.loads(line) for line in log.splitlines() if line.strip()]
    assert all({"time", "level", "logger", "message"} <= entry.keys() for entry in entries)
    assert {"DEBUG", "INFO", "WARNING"} <= {entry["level"] for entry in entries}
    assert any(
        entry["logger"] == "cti_server.telephony.ami_client" and entry["level"] == "WARNING"
        for entry in entries
    )
    access = [entry for entry in entries if entry["logger"] == "aiohttp.access"]
    assert any(entry["path"] == "/healthz" and entry["status"] == 200 for entry in access)


@pytest.mark.asyncio
async def test_log_format_and_access_log_from_the_settings(tmp_path: Path) -> None:
    with serving(tmp_path, CTI_LOGGING__FORMAT="json", CTI_LOGGING__ACCESS_LOG="false") as server:
        await server.wait_alive()
        log = server.stop()

    entries = [json.loads(line) for line in log.splitlines() if line.strip()]
    assert entries
    assert not [entry for entry in entries if entry["logger"] == "aiohttp.access"]
    assert "DEBUG" not in {entry["level"] for entry in entries}
