"""The local Asterisk's self-signed certificate for browser phones' WSS."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

from cti_server.asterisk.certificate import ensure_self_signed
from cti_server.asterisk.local import AsteriskChroot, AsteriskInstance
from cti_server.config import load_settings


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


def _instance(tmp_path: Path, **dialplan: object) -> AsteriskInstance:
    settings = load_settings(None, ami={"secret": "x"}, dialplan=dialplan)
    return AsteriskInstance(AsteriskChroot(tmp_path), "demo", settings)


def test_the_local_instance_makes_one_where_asterisk_reads_it_for_browser_phones(
    tmp_path: Path,
) -> None:
    made = _instance(tmp_path, browser_phones=True).ensure_certificate()
    assert made == (
        "/etc/asterisk/cti/demo/keys/asterisk.crt",
        "/etc/asterisk/cti/demo/keys/asterisk.key",
    )
    assert (tmp_path / made[0].lstrip("/")).is_file()
    assert stat.S_IMODE((tmp_path / made[1].lstrip("/")).stat().st_mode) == 0o600


def test_no_certificate_is_made_without_browser_phones_or_when_one_is_configured(
    tmp_path: Path,
) -> None:
    assert _instance(tmp_path).ensure_certificate() is None
    configured = {"tls_cert": "/etc/ssl/a.crt", "tls_key": "/etc/ssl/a.key"}
    assert _instance(tmp_path, browser_phones=True, **configured).ensure_certificate() is None
    assert not list(tmp_path.rglob("*.crt"))
