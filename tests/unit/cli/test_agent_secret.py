"""``cti agent secret rotate``: a new password shown once, its hash stored, nothing else."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from cti_server.asterisk.sip_digests import ha1, read_digests
from cti_server.cli.main import main


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        "CTI_AMI__SECRET": "s3cret",
        "CTI_DIALPLAN__SIP_DIGESTS": str(tmp_path / "sip-digests.json"),
        "CTI_ASTERISK__CHROOT": str(tmp_path / "no-chroot"),  # no Asterisk runs there
    }


def test_rotate_prints_the_password_once_and_stores_its_hash(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["agent", "secret", "rotate", "1001"], env=_env(tmp_path))
    assert result.exit_code == 0, result.output
    found = re.search(r"SIP password of 1001 \(shown this once\): (\S+)", result.output)
    assert found, result.output
    password = found.group(1)
    assert result.output.count(password) == 1
    assert "`cti dialplan render`" in result.output  # a deployment's own Asterisk, not ours
    assert read_digests(tmp_path / "sip-digests.json") == {"1001": ha1("1001", password)}


def test_rotate_for_the_local_asterisk_says_it_takes_effect_at_its_next_start(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in _env(tmp_path).items() if k != "CTI_DIALPLAN__SIP_DIGESTS"}
    result = CliRunner().invoke(main, ["agent", "secret", "rotate", "1002"], env=env)
    assert result.exit_code == 0, result.output
    assert "when Asterisk next starts (`cti asterisk up`)" in result.output
    digests = tmp_path / "no-chroot" / "etc/asterisk/cti/demo/sip-digests.json"
    assert set(read_digests(digests)) == {"1002"}


def test_rotate_refuses_an_extension_that_is_not_an_agent(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["agent", "secret", "rotate", "9999"], env=_env(tmp_path))
    assert result.exit_code == 2
    assert "9999 is not in [dialplan] agents" in result.output
    assert not (tmp_path / "sip-digests.json").exists()


def test_dialplan_render_of_browser_phones_without_a_certificate_says_what_to_set(
    tmp_path: Path,
) -> None:
    env = {**_env(tmp_path), "CTI_DIALPLAN__BROWSER_PHONES": "true"}
    result = CliRunner().invoke(main, ["dialplan", "render", "--out", str(tmp_path)], env=env)
    assert result.exit_code == 2
    assert "tls_cert and tls_key" in result.output
