"""Classic AGI plumbing: the dialplan per transport, the chroot's package marker, the bridge."""

from __future__ import annotations

import asyncio
import difflib
import os
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from cti_server.asterisk.agi_bridge import SHIM, AgiBridge
from cti_server.asterisk.local import (
    COMPLETE_MARKER,
    PACKAGES,
    AsteriskChroot,
    default_chroot_path,
)
from cti_server.asterisk.render import render_config
from cti_server.config import ConfigError, load_settings
from tests.support.waiting import poll_until


def _extensions(**ivr: object) -> list[str]:
    settings = load_settings(None, ami={"secret": "s3cret"}, ivr=ivr)
    return render_config(settings)["extensions.conf"].splitlines()


def test_classic_agi_changes_only_how_the_dialplan_reaches_the_ivr() -> None:
    """The FastAGI dialplan stays as it was; classic AGI differs in exactly three lines."""
    fastagi, classic = _extensions(), _extensions(transport="agi")
    changed = [
        line
        for line in difflib.unified_diff(fastagi, classic, lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    assert changed == [
        "-CTI_AGI = agi://127.0.0.1:4573",
        "+CTI_AGI = cti-agi",
        "- same => n,AGI(${CTI_AGI}/inbound)",
        "+ same => n,AGI(${CTI_AGI},inbound)",
        "- same => n,AGI(${CTI_AGI}/survey)",
        "+ same => n,AGI(${CTI_AGI},survey)",
    ]


def test_a_deployment_runs_cti_agi_from_its_venv() -> None:
    lines = _extensions(transport="agi", agi_program="/opt/cti/.venv/bin/cti-agi")
    assert "CTI_AGI = /opt/cti/.venv/bin/cti-agi" in lines


@pytest.mark.parametrize("program", ["cti-agi,inbound", "x y", "a$(b)", "cti\nagi", ""])
def test_an_agi_program_that_could_break_the_dialplan_is_refused(program: str) -> None:
    with pytest.raises(ConfigError, match=r"ivr\.agi_program"):
        load_settings(None, ami={"secret": "s"}, ivr={"agi_program": program})


def test_a_short_service_token_is_refused_without_showing_it() -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(None, ami={"secret": "s"}, ivr={"service_token": "short-secret"})
    assert "ivr.service_token" in str(error.value)
    assert "short-secret" not in str(error.value)


def test_a_chroot_of_another_package_list_is_not_complete(tmp_path: Path) -> None:
    chroot = AsteriskChroot(tmp_path / "root")
    chroot.root.mkdir()
    seen = [chroot.complete]
    (chroot.root / COMPLETE_MARKER).write_text("1763859643.1\n", encoding="utf-8")  # older
    seen.append(chroot.complete)
    (chroot.root / COMPLETE_MARKER).write_text(
        "packages: " + ",".join(sorted(PACKAGES)) + "\n", encoding="utf-8"
    )
    seen.append(chroot.complete)
    assert seen == [False, False, True]
    assert "socat" in PACKAGES


def test_each_package_list_has_a_cached_chroot_of_its_own(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = default_chroot_path()
    assert path.parent == tmp_path / "cti-server"
    assert path.name.startswith("asterisk-chroot-")
    monkeypatch.setattr("cti_server.asterisk.local.PACKAGES", (*PACKAGES, "sox"))
    assert default_chroot_path() != path


def test_the_shim_reaches_the_bridge_in_the_instance_run_dir() -> None:
    assert SHIM.startswith("#!/bin/sh\n")
    assert '"UNIX-CONNECT:$AST_RUN_DIR/cti-agi.sock"' in SHIM
    assert 'exit "$status"' in SHIM


@pytest.mark.asyncio
async def test_the_bridge_runs_the_program_on_the_connection_and_keeps_its_status(
    tmp_path: Path,
) -> None:
    """inetd-style: the program speaks on the connection; its exit status waits in a file
    named after the connecting process, written before the connection closes."""
    program = (
        "import sys\n"
        "line = sys.stdin.readline()\n"
        "sys.stdout.write('GOT ' + line)\n"
        "sys.stdout.flush()\n"
        "sys.exit(3)\n"
    )
    bridge = AgiBridge(
        tmp_path / "cti-agi.sock", [sys.executable, "-c", program], log_path=tmp_path / "log"
    )
    await bridge.start()
    try:
        assert (tmp_path / "cti-agi.sock").stat().st_mode & 0o777 == 0o600
        reader, writer = await asyncio.open_unix_connection(str(tmp_path / "cti-agi.sock"))
        writer.write(b"agi_request: cti-agi\n")
        await writer.drain()
        assert await asyncio.wait_for(reader.readline(), 10) == b"GOT agi_request: cti-agi\n"
        assert await asyncio.wait_for(reader.read(), 10) == b""  # closed once it exited
        writer.close()
        status = tmp_path / f"cti-agi.{os.getpid()}.status"
        assert status.read_text(encoding="ascii") == "3\n"
        assert bridge.statuses == [3]
    finally:
        await bridge.stop()
    assert not (tmp_path / "cti-agi.sock").exists()


@pytest.mark.asyncio
async def test_stopping_the_bridge_ends_calls_still_running(tmp_path: Path) -> None:
    program = "import sys\nsys.stdin.read()\n"  # waits for ever (until its end closes)
    bridge = AgiBridge(tmp_path / "b.sock", [sys.executable, "-c", program])
    await bridge.start()
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.setblocking(False)
    await asyncio.get_running_loop().sock_connect(client, str(tmp_path / "b.sock"))
    await poll_until(_started(bridge), 10, what="the call started")
    await asyncio.wait_for(bridge.stop(), 10)
    client.close()
    assert bridge.statuses == []  # ended, not finished


def _started(bridge: AgiBridge) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return bridge.calls > 0

    return check
