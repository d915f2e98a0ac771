"""A real Asterisk instance for a test session (or a single test), on ports of its own."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cti_server.asterisk.local import AsteriskChroot, AsteriskInstance
from cti_server.config import Settings, load_settings, serve_environment
from tests.support.ports import free_port


@dataclass
class AsteriskNode:
    """One running Asterisk and the settings a CTI server needs to work with it."""

    settings: Settings
    instance: AsteriskInstance

    def server_env(self) -> dict[str, str]:
        """The environment that makes `cti serve` use these settings."""
        return serve_environment(self.settings)


def node_settings(name: str, workdir: Path, dialplan: dict[str, Any] | None = None) -> Settings:
    """Settings with free ports and a fresh secret, so instances never collide; ``dialplan``
    adds to (or replaces) the simulation's dialplan settings."""
    return load_settings(
        None,
        ami={"secret": secrets.token_urlsafe(16), "port": free_port(), "node": name},
        agi={"port": free_port()},
        http={"port": free_port()},
        database={"url": f"sqlite+aiosqlite:///{workdir / 'cti.db'}"},
        dialplan={
            "sip_port": free_port(socket.SOCK_DGRAM),
            "wss_port": free_port(),  # browser phones' listener, when a test gives agents one
            "sim_talk_seconds": 1,
            **(dialplan or {}),
        },
        asterisk={"instance": name},
        recorder={"spool_path": str(workdir / "spool" / "interactions.jsonl")},
        ivr={"inbound_flow": None, "survey_flow": None},  # IVR tests turn them on
    )


def require_chroot() -> AsteriskChroot:
    """The cached chroot, built now if we can; otherwise the test is skipped with the reason."""
    chroot = AsteriskChroot()
    if chroot.complete:
        return chroot
    if os.geteuid() != 0 or shutil.which("debootstrap") is None:
        pytest.skip("real Asterisk needs root and debootstrap (run scripts/bootstrap first)")
    chroot.provision()
    return chroot


def start_node(name: str, workdir: Path) -> AsteriskNode:
    instance = AsteriskInstance(require_chroot(), name, node_settings(name, workdir))
    instance.up()
    return AsteriskNode(settings=instance.settings, instance=instance)
