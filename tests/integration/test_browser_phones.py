"""Browser phones against the real Asterisk: its WSS listener, WebRTC endpoints, and each
agent's own SIP password (made, rotated while Asterisk runs, and nobody else's)."""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from cti_server.asterisk.local import AsteriskInstance
from cti_server.asterisk.sip_digests import rotate
from cti_server.cli.main import main
from cti_server.config import Settings, load_settings
from tests.support.asterisk import require_chroot
from tests.support.ports import free_port
from tests.support.sip_ws import register, sip_websocket

pytestmark = [pytest.mark.asterisk]

BROWSER_A, BROWSER_B, DESK = "8101", "8102", "8103"


@dataclass
class Pbx:
    instance: AsteriskInstance
    config_file: Path
    shared_secret: str
    passwords: dict[str, str]

    @property
    def settings(self) -> Settings:
        return self.instance.settings

    @property
    def url(self) -> str:
        return f"wss://127.0.0.1:{self.settings.dialplan.wss_port}/ws"


def _config_text(name: str, workdir: Path, shared_secret: str) -> str:
    """A settings file like a user's: two browser phones and a desk phone on the shared secret."""
    return f"""
[ami]
secret = "{secrets.token_urlsafe(16)}"
port = {free_port()}
node = "{name}"
[agi]
port = {free_port()}
[http]
port = {free_port()}
[database]
url = "sqlite+aiosqlite:///{workdir / "cti.db"}"
[recorder]
spool_path = "{workdir / "interactions.jsonl"}"
[asterisk]
instance = "{name}"
[dialplan]
sip_port = {free_port(socket.SOCK_DGRAM)}
wss_port = {free_port()}
sip_secret = "{shared_secret}"
agents = [
  {{ extension = "{BROWSER_A}", name = "Browser A", phone = "browser" }},
  {{ extension = "{BROWSER_B}", name = "Browser B", phone = "browser" }},
  {{ extension = "{DESK}", name = "Desk C" }},
]
"""


@pytest.fixture(scope="module")
def pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    workdir = tmp_path_factory.mktemp("browser-phones")
    name = f"w{os.getpid()}"
    shared = secrets.token_urlsafe(16)
    config_file = workdir / "cti.toml"
    config_file.write_text(_config_text(name, workdir, shared), encoding="utf-8")
    instance = AsteriskInstance(require_chroot(), name, load_settings(config_file))
    instance.digests_file.unlink(missing_ok=True)  # an earlier run's instance of this name
    passwords = {ext: rotate(instance.digests_file, ext) for ext in (BROWSER_A, BROWSER_B)}
    instance.up()
    try:
        yield Pbx(instance, config_file, shared, passwords)
    finally:
        instance.stop()


@pytest.mark.asyncio
async def test_wss_listener_accepts_a_tls_websocket_for_sip(pbx: Pbx) -> None:
    async with sip_websocket(pbx.url) as ws:
        assert ws.protocol == "sip"


def test_the_local_instance_made_its_own_certificate(pbx: Pbx) -> None:
    keys = pbx.instance.chroot.host_path(pbx.instance.dirs.etc) / "keys"
    assert (keys / "asterisk.crt").read_text(encoding="ascii").startswith("-----BEGIN CERT")
    assert stat.S_IMODE((keys / "asterisk.key").stat().st_mode) == 0o600


def _endpoint_option(pbx: Pbx, extension: str, option: str) -> str:
    shown = pbx.instance.cli(f"pjsip show endpoint {extension}").stdout
    found = re.search(rf"^\s*{option}\s*:\s*(\S+)", shown, flags=re.MULTILINE)
    assert found, shown
    return found.group(1)


def test_browser_endpoints_are_webrtc_and_the_desk_phone_is_not(pbx: Pbx) -> None:
    assert _endpoint_option(pbx, BROWSER_A, "webrtc") == "yes"
    assert _endpoint_option(pbx, BROWSER_A, "media_encryption") == "dtls"
    assert _endpoint_option(pbx, BROWSER_A, "allow").startswith("(opus|ulaw|alaw")
    assert _endpoint_option(pbx, DESK, "webrtc") == "no"


def test_no_password_is_in_asterisks_configuration(pbx: Pbx) -> None:
    etc = pbx.instance.chroot.host_path(pbx.instance.dirs.etc)
    for path in etc.iterdir():
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            assert not any(p in text for p in pbx.passwords.values()), path.name
    assert stat.S_IMODE((etc / "pjsip.conf").stat().st_mode) == 0o600
    assert stat.S_IMODE(pbx.instance.digests_file.stat().st_mode) == 0o600


@pytest.mark.asyncio
async def test_an_agent_registers_with_its_own_password_only(pbx: Pbx) -> None:
    a, b = pbx.passwords[BROWSER_A], pbx.passwords[BROWSER_B]
    assert await register(pbx.url, BROWSER_A, BROWSER_A, a) == 200
    assert await register(pbx.url, BROWSER_A, BROWSER_A, "wrong") in {401, 403}
    assert await register(pbx.url, BROWSER_A, BROWSER_A, pbx.shared_secret) in {401, 403}
    # A's credentials cannot register as B, however they are presented
    assert await register(pbx.url, BROWSER_B, BROWSER_A, a) in {401, 403}
    assert await register(pbx.url, BROWSER_B, BROWSER_B, a) in {401, 403}
    assert await register(pbx.url, BROWSER_B, BROWSER_B, b) == 200


@pytest.mark.asyncio
async def test_a_desk_phone_without_its_own_password_keeps_the_shared_one(pbx: Pbx) -> None:
    assert await register(pbx.url, DESK, DESK, pbx.shared_secret) == 200
    assert await register(pbx.url, DESK, DESK, "wrong") in {401, 403}


@pytest.mark.asyncio
async def test_rotating_a_password_takes_effect_at_once_and_shows_it_once(pbx: Pbx) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CTI_")}
    result = CliRunner().invoke(
        main,
        ["agent", "secret", "rotate", BROWSER_A, "--config", str(pbx.config_file)],
        env=env,
    )
    assert result.exit_code == 0, result.output
    assert "reloaded PJSIP" in result.output
    new = re.search(r"\(shown this once\): (\S+)", result.output)
    assert new, result.output
    old = pbx.passwords[BROWSER_A]
    assert await register(pbx.url, BROWSER_A, BROWSER_A, new.group(1)) == 200
    assert await register(pbx.url, BROWSER_A, BROWSER_A, old) in {401, 403}
    stored = json.loads(pbx.instance.digests_file.read_text(encoding="utf-8"))
    assert new.group(1) not in json.dumps(stored)
    pbx.passwords[BROWSER_A] = new.group(1)
