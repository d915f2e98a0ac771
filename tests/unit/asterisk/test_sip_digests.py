"""Agents' SIP passwords: made at random, stored as their digest hash in an owner-only file."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from cti_server.asterisk.sip_digests import SipDigestError, ha1, read_digests, rotate


def test_ha1_is_the_rfc_2617_hash_of_user_realm_and_password() -> None:
    # md5("1001:asterisk:secret"), as JsSIP and Asterisk's password_digest compute it
    assert ha1("1001", "secret") == "f1243e5710353a976f53f30734dcab69"
    assert ha1("1001", "secret") != ha1("1002", "secret")
    assert ha1("1001", "secret") != ha1("1001", "secret", realm="other")


def test_rotate_stores_only_the_hash_in_an_owner_only_file(tmp_path: Path) -> None:
    path = tmp_path / "var" / "sip-digests.json"
    password = rotate(path, "1001")
    assert len(password) >= 20
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert password not in path.read_text(encoding="utf-8")
    assert read_digests(path) == {"1001": ha1("1001", password)}


def test_rotating_again_replaces_the_password_and_keeps_the_other_agents(tmp_path: Path) -> None:
    path = tmp_path / "sip-digests.json"
    first = rotate(path, "1001")
    other = rotate(path, "1002")
    second = rotate(path, "1001")
    assert second != first
    assert read_digests(path) == {"1001": ha1("1001", second), "1002": ha1("1002", other)}


def test_no_file_means_no_agent_has_its_own_password(tmp_path: Path) -> None:
    assert read_digests(tmp_path / "missing.json") == {}


@pytest.mark.parametrize("content", ["not json", '["1001"]', '{"1001": "cleartext-password"}'])
def test_a_file_that_is_not_extension_to_hash_is_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / "sip-digests.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(SipDigestError, match=r"sip-digests\.json"):
        read_digests(path)
    with pytest.raises(SipDigestError):
        rotate(path, "1001")
    assert path.read_text(encoding="utf-8") == content  # left for the user to look at
