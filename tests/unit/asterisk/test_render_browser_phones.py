"""Browser phones in the rendered configuration: the WSS listener, WebRTC endpoints, and each
agent's own SIP password present only as its hash."""

from __future__ import annotations

import re
import stat
from pathlib import Path
from typing import Any

import pytest

from cti_server.asterisk.render import RenderError, render_config, write_config
from cti_server.asterisk.sip_digests import ha1, read_digests, rotate
from cti_server.config import ConfigError, Settings, load_settings
from tests.support.asterisk_conf import conf_options, conf_sections

TLS = {"tls_cert": "/etc/asterisk/keys/a.crt", "tls_key": "/etc/asterisk/keys/a.key"}
AGENTS = [
    {"extension": "2001", "name": "Desk", "phone": "desk"},
    {"extension": "2002", "name": "Browser", "phone": "browser"},
    {"extension": "2003", "name": "Default"},
]


def _settings(**dialplan: Any) -> Settings:
    return load_settings(None, ami={"secret": "s3cret"}, dialplan={"agents": AGENTS, **dialplan})


def _endpoint_templates(pjsip: str) -> dict[str, str]:
    """``{extension: the template its endpoint is made from}``."""
    return dict(re.findall(r"^\[(\d+)\]\((agent-(?:endpoint|browser))\)$", pjsip, re.MULTILINE))


def test_browser_agents_get_webrtc_endpoints_and_desk_agents_keep_theirs() -> None:
    files = render_config(_settings(**TLS))
    assert _endpoint_templates(files["pjsip.conf"]) == {
        "2001": "agent-endpoint",
        "2002": "agent-browser",
        "2003": "agent-endpoint",  # browser_phones is off by default
    }
    sections = conf_sections(files["pjsip.conf"])
    browser = conf_options(sections["[agent-browser](!,agent-endpoint)"])
    assert browser["webrtc"] == "yes"
    assert browser["allow"] == "opus,ulaw,alaw"
    assert sections["[agent-browser](!,agent-endpoint)"].index("disallow = all") < sections[
        "[agent-browser](!,agent-endpoint)"
    ].index("allow = opus,ulaw,alaw")
    assert browser["dtmf_mode"] == "rfc4733"
    aor = conf_options(sections["[agent-aor](!)"])
    assert (aor["max_contacts"], aor["remove_existing"]) == ("1", "yes")


def test_browser_phones_flag_gives_the_browser_to_agents_who_chose_nothing() -> None:
    templates = _endpoint_templates(
        render_config(_settings(browser_phones=True, **TLS))["pjsip.conf"]
    )
    assert templates == {"2001": "agent-endpoint", "2002": "agent-browser", "2003": "agent-browser"}


def test_wss_listener_on_loopback_with_the_configured_certificate_and_port() -> None:
    files = render_config(_settings(wss_port=18089, **TLS))
    http = conf_options(conf_sections(files["http.conf"])["[general]"])
    assert http["enabled"] == "yes"
    assert http["tlsenable"] == "yes"
    assert http["tlsbindaddr"] == "127.0.0.1:18089"
    assert http["tlscertfile"] == TLS["tls_cert"]
    assert http["tlsprivatekey"] == TLS["tls_key"]
    assert "bindaddr" not in http  # no plain HTTP listener
    transport = conf_options(conf_sections(files["pjsip.conf"])["[transport-wss]"])
    assert transport["protocol"] == "wss"
    modules = files["modules.conf"]
    assert "res_http_websocket.so" not in modules
    assert "res_pjsip_transport_websocket.so" not in modules


def test_without_browser_phones_nothing_listens_for_them() -> None:
    agents = [{"extension": "2001", "name": "Desk"}]
    files = render_config(load_settings(None, ami={"secret": "x"}, dialplan={"agents": agents}))
    assert conf_options(conf_sections(files["http.conf"])["[general]"])["enabled"] == "no"
    assert "transport-wss" not in files["pjsip.conf"]
    assert "agent-browser" not in files["pjsip.conf"]


def test_browser_phones_without_a_certificate_are_refused_with_the_settings_to_set() -> None:
    with pytest.raises(RenderError, match=r"tls_cert and tls_key"):
        render_config(_settings())


def test_a_certificate_without_its_key_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"tls_cert and tls_key go together"):
        _settings(tls_cert="/etc/asterisk/keys/a.crt")


def test_an_agents_own_password_is_rendered_as_its_hash_only(tmp_path: Path) -> None:
    digests_file = tmp_path / "sip-digests.json"
    password = rotate(digests_file, "2002")
    files = render_config(
        _settings(sip_secret="shared-pw", **TLS), digests=read_digests(digests_file)
    )
    for name, text in files.items():
        assert password not in text, name
    sections = conf_sections(files["pjsip.conf"])
    own = conf_options(sections["[2002]"])
    assert own["type"] == "auth"
    assert own["auth_type"] == "digest"
    assert own["username"] == "2002"
    assert own["password_digest"] == f"MD5:{ha1('2002', password, own['realm'])}"
    assert conf_options(sections["[2002](agent-browser)"])["auth"] == "2002"
    # the others keep the shared password until they get their own
    assert "[2001](agent-auth)" in sections
    assert "[2002](agent-auth)" not in sections


def test_pjsip_conf_holding_password_hashes_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    digests = {"2002": ha1("2002", "pw")}
    written = write_config(render_config(_settings(**TLS), digests=digests), tmp_path)
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in written}
    assert modes["pjsip.conf"] == 0o600
    assert modes["http.conf"] == 0o644  # paths and a port: nothing secret
