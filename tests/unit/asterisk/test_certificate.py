"""The local Asterisk's self-signed certificate for browser phones' WSS."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from cti_server.asterisk.certificate import ensure_self_signed

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def test_makes_an_ec_certificate_for_loopback_with_an_owner_only_key(tmp_path: Path) -> None:
    cert, key = tmp_path / "keys" / "asterisk.crt", tmp_path / "keys" / "asterisk.key"
    assert ensure_self_signed(cert, key)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    text = subprocess.run(
        ["openssl", "x509", "-in", str(cert), "-noout", "-text"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "prime256v1" in text or "P-256" in text
    assert "IP Address:127.0.0.1" in text
    assert "DNS:localhost" in text
    assert not list(tmp_path.glob("keys/*.partial"))


def test_an_existing_certificate_is_kept(tmp_path: Path) -> None:
    cert, key = tmp_path / "a.crt", tmp_path / "a.key"
    ensure_self_signed(cert, key)
    before = cert.read_bytes()
    assert not ensure_self_signed(cert, key)
    assert cert.read_bytes() == before
