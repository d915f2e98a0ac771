"""`cti serve` as a child process, for tests that kill, restart or configure it."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.asterisk import AsteriskNode
from tests.support.waiting import poll_until

CTI = str(Path(sys.executable).parent / "cti")


class ServeProcess:
    """`cti serve` as a child process with its log in the test's folder."""

    def __init__(self, node: AsteriskNode, log: Path) -> None:
        self.env = node.server_env()
        self.port = node.settings.http.port
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [CTI, "serve"], env=self.env, stdout=out, stderr=subprocess.STDOUT
            )

    def log_tail(self, lines: int = 60) -> str:
        """The end of the server's log, for a failing test's report."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n--- cti serve log (end) ---\n" + "\n".join(text.splitlines()[-lines:])

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(15)

    async def get(self, path: str, token: str = "") -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            async with (
                aiohttp.ClientSession() as http,
                http.get(
                    f"http://127.0.0.1:{self.port}{path}",
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=3),
                ) as response,
            ):
                return response.status, await response.json()
        except (aiohttp.ClientError, TimeoutError):
            return 0, None

    async def wait_ready(self) -> None:
        async def _ready() -> bool:
            _, body = await self.get("/status")
            return bool(body and body["ami"]["connected"] and body["database"]["ok"])

        # a start takes a few seconds alone, but much longer on two cores shared with
        # CPU-bound tests (model checks) and other servers starting: a deadline, not a wait
        await poll_until(_ready, 90, what="cti serve ready")

    async def token(self, username: str, password: str) -> str:
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"http://127.0.0.1:{self.port}/api/tokens",
                json={"username": username, "password": password},
            ) as response,
        ):
            assert response.status == 201, await response.text()
            token: str = (await response.json())["token"]
            return token
