"""The Asterisk configuration rendered from the settings the server uses."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cti_server.asterisk.render import CONFIG_FILES, render_config, write_config
from cti_server.cli.main import main
from cti_server.config import ConfigError, Settings, load_settings
from cti_server.telephony.fastagi import asterisk_key
from tests.support.asterisk_conf import conf_options, conf_sections

SECRET = "s3cret"


def _settings(**overrides: Any) -> Settings:
    overrides["ami"] = {"secret": SECRET, **overrides.get("ami", {})}
    return load_settings(None, **overrides)


def test_every_file_is_rendered() -> None:
    files = render_config(_settings())
    assert set(files) == set(CONFIG_FILES)
    for name, text in files.items():
        assert text.strip(), name
        assert "{{" not in text, name
        assert "{%" not in text, name


def test_manager_conf_binds_loopback_with_the_user_and_secret() -> None:
    text = render_config(_settings(ami={"username": "ctiuser", "port": 5040}))["manager.conf"]
    sections = conf_sections(text)
    general = conf_options(sections["[general]"])
    assert general["bindaddr"] == "127.0.0.1"
    assert general["port"] == "5040"
    assert general["enabled"] == "yes"
    assert general["webenabled"] == "no"
    user = conf_options(sections["[ctiuser]"])
    assert user["secret"] == SECRET
    assert user["permit"] == "127.0.0.1/255.255.255.255"
    write = {item.strip() for item in user["write"].split(",")}
    assert "originate" in write
    assert not write & {"command", "config", "system", "all"}


def test_extensions_conf_inbound_calls_agi_then_falls_back() -> None:
    settings = _settings(
        agi={"host": "10.1.2.3", "port": 4600},
        dialplan={"inbound_context": "from-carrier", "default_queue": "sales"},
    )
    sections = conf_sections(render_config(settings)["extensions.conf"])
    globals_ = conf_options(sections["[globals]"])
    assert globals_["CTI_AGI"] == "agi://10.1.2.3:4600"
    assert globals_["CTI_DEFAULT_QUEUE"] == "sales"
    assert "[from-carrier]" in sections
    assert any("Goto(cti-inbound-call,s,1)" in line for line in sections["[from-carrier]"])

    flow = sections["[cti-inbound-call]"]

    def index(fragment: str) -> int:
        matches = [i for i, line in enumerate(flow) if fragment in line]
        assert len(matches) == 1, (fragment, flow)
        return matches[0]

    agi = index("AGI(${CTI_AGI}/inbound)")
    to_fallback = index('GotoIf($["${CTI_QUEUE}" = ""]?fallback)')
    queue = index("Queue(${CTI_QUEUE},")
    fallback = index("n(fallback),")
    default_queue = index("Queue(${CTI_DEFAULT_QUEUE},")
    assert agi < to_fallback < queue < fallback < default_queue
    assert index("CTI_FALLBACK=1)") > fallback
    assert flow[-1].endswith("Hangup()")


def test_queues_conf_has_one_section_per_queue() -> None:
    settings = _settings(
        dialplan={
            "default_queue": "vip",
            "queues": [
                {"name": "vip", "strategy": "ringall", "ring_timeout": 20},
                {"name": "billing"},
                {"name": "tech-2"},
            ],
        }
    )
    sections = conf_sections(render_config(settings)["queues.conf"])
    assert set(sections) == {"[general]", "[vip]", "[billing]", "[tech-2]"}
    vip = conf_options(sections["[vip]"])
    assert vip["strategy"] == "ringall"
    assert vip["timeout"] == "20"
    assert conf_options(sections["[billing]"])["strategy"] == "rrmemory"


def test_pjsip_conf_has_one_endpoint_per_agent() -> None:
    agents = [{"extension": ext, "name": f"Agent {ext}"} for ext in ("2001", "2002", "2003")]
    text = render_config(_settings(dialplan={"agents": agents}))["pjsip.conf"]
    endpoints = re.findall(r"^\[(\d+)\]\(agent-endpoint\)$", text, flags=re.MULTILINE)
    assert endpoints == ["2001", "2002", "2003"]
    aors = re.findall(r"^\[(\d+)\]\(agent-aor\)$", text, flags=re.MULTILINE)
    assert aors == ["2001", "2002", "2003"]
    assert '"Agent 2002" <2002>' in text
    assert "agent-auth" not in text  # no SIP secret configured


def test_pjsip_conf_with_a_sip_secret_adds_auth_per_agent() -> None:
    agents = [{"extension": "2001", "name": "张伟"}]
    text = render_config(_settings(dialplan={"agents": agents, "sip_secret": "sip-pw"}))[
        "pjsip.conf"
    ]
    assert "password = sip-pw" in text
    assert len(re.findall(r"^\[2001\]\(agent-auth\)$", text, flags=re.MULTILINE)) == 1
    assert "auth = 2001" in text
    assert '"张伟" <2001>' in text


def test_agent_name_that_could_break_the_file_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"dialplan\.agents\.0\.name"):
        _settings(dialplan={"agents": [{"extension": "2001", "name": "x\n[evil]"}]})


def test_default_queue_must_be_a_configured_queue() -> None:
    # default_queue stays "support", which is no longer among the queues
    with pytest.raises(ConfigError, match=r"dialplan\.default_queue"):
        _settings(dialplan={"queues": [{"name": "vip"}]})


def test_cli_dialplan_render_writes_the_files(tmp_path: Path) -> None:
    out = tmp_path / "etc-asterisk"
    result = CliRunner().invoke(
        main, ["dialplan", "render", "--out", str(out)], env={"CTI_AMI__SECRET": SECRET}
    )
    assert result.exit_code == 0, result.output
    assert {path.name for path in out.iterdir()} == set(CONFIG_FILES)
    assert sorted(result.output.split()) == sorted(str(out / name) for name in CONFIG_FILES)
    manager = out / "manager.conf"
    assert stat.S_IMODE(manager.stat().st_mode) == 0o600
    assert f"secret = {SECRET}" in manager.read_text(encoding="utf-8")
    # the dialplan holds the key Asterisk proves itself to the FastAGI server with
    extensions = out / "extensions.conf"
    assert stat.S_IMODE(extensions.stat().st_mode) == 0o600
    assert f"CTI_AGI_KEY = {asterisk_key(SECRET)}" in extensions.read_text(encoding="utf-8")
    assert stat.S_IMODE((out / "queues.conf").stat().st_mode) == 0o644


def test_cli_dialplan_render_without_secret_fails(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["dialplan", "render", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "ami.secret" in result.output
    assert not (tmp_path / "out").exists()


def test_manager_conf_is_never_world_readable_while_holding_the_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    real_chmod = Path.chmod

    def spying_chmod(self: Path, mode: int, *, follow_symlinks: bool = True) -> None:
        if self.name == "manager.conf":
            seen.append(stat.S_IMODE(self.stat().st_mode))
            assert SECRET in self.read_text(encoding="utf-8")
        real_chmod(self, mode, follow_symlinks=follow_symlinks)

    monkeypatch.setattr(Path, "chmod", spying_chmod)
    old_umask = os.umask(0o022)
    try:
        write_config(render_config(_settings()), tmp_path / "out")
    finally:
        os.umask(old_umask)
    assert seen
    assert all(mode & 0o077 == 0 for mode in seen), [oct(mode) for mode in seen]


@pytest.mark.parametrize("routed", [False, True])
def test_transfer_to_queue_has_one_extension_per_configured_queue(routed: bool) -> None:
    settings = _settings(routing={"enabled": routed})
    flow = conf_sections(render_config(settings)["extensions.conf"])["[cti-to-queue]"]
    starts = [line.split(",")[0] for line in flow if line.startswith("exten =>")]
    assert starts == ["exten => support", "exten => sales"]  # no pattern: nothing else goes
    entered = [line for line in flow if "Queue(" in line or "cti-routed" in line]
    if routed:  # waits the router's way, its wait counted from the transfer
        assert entered == [
            "same => n,Gosub(cti-routed,s,1(support))",
            "same => n,Gosub(cti-routed,s,1(sales))",
        ]
        assert flow.count("same => n,Set(CTI_WAITING_SINCE=)") == 2
    else:
        assert entered == [
            "same => n,Queue(support,ct,,,${CTI_QUEUE_MAX_WAIT})",
            "same => n,Queue(sales,ct,,,${CTI_QUEUE_MAX_WAIT})",
        ]


@pytest.mark.parametrize("routing", [False, True], ids=["plain", "routed"])
def test_no_caller_text_reaches_an_applications_arguments(routing: bool) -> None:
    """Asterisk sends a Newexten's AppData to AMI unescaped: a caller's name or number with a
    line break inside an application's arguments would forge AMI messages. Only the simulator's
    own contexts (its callers are ours) may set a name."""
    text = render_config(_settings(routing={"enabled": routing}))["extensions.conf"]
    for header, lines in conf_sections(text).items():
        if header.startswith("[cti-sim"):
            continue
        for line in lines:
            assert "${CALLERID(" not in line, f"{header}: {line}"
            assert "${CONNECTEDLINE(" not in line, f"{header}: {line}"
