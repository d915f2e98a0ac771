"""The production guide (docs/production.md) and the files it installs (deploy/) name commands,
options and settings that exist: a renamed flag or setting fails here, not on a deployer's
first restart."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
from pydantic import BaseModel

from cti_server.cli import main as cli
from cti_server.config import HttpSettings, Settings, load_settings
from cti_server.ivr.channels import agi_main

ROOT = Path(__file__).resolve().parents[3]
GUIDE = ROOT / "docs" / "production.md"
UNITS = sorted((ROOT / "deploy" / "systemd").rglob("*.service")) + sorted(
    (ROOT / "deploy" / "systemd").rglob("*.conf")
)
NGINX = ROOT / "deploy" / "nginx" / "cti.conf"
PROGRAMS: dict[str, click.Command] = {"cti": cli.main, "cti-agi": agi_main.main}


def _unit_lines(path: Path) -> list[tuple[str, str]]:
    """``(key, value)`` of every setting, in order; systemd allows a key more than once."""
    lines = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            lines.append((key, value))
    return lines


def _check_command(argv: list[str]) -> None:
    """Parse ``argv`` as the program would, without running it: unknown commands, options or
    missing arguments raise click's usage errors."""
    program = Path(argv[0]).name
    command, words = PROGRAMS[program], argv[1:]
    ctx = click.Context(command, info_name=program)
    while isinstance(command, click.Group):
        assert words, f"{shlex.join(argv)}: no subcommand"
        found = command.get_command(ctx, words[0])
        assert found is not None, f"{shlex.join(argv)}: no command {words[0]!r}"
        command, words = found, words[1:]
        ctx = click.Context(command, info_name=command.name, parent=ctx)
    command.make_context(command.name, list(words), parent=ctx.parent)


def _setting_exists(variable: str) -> bool:
    """``CTI_UI__COOKIE_SECURE`` (or ``..._FILE``) names ``[ui] cookie_secure``."""
    if variable == "CTI_CONFIG_FILE":
        return True
    path = variable.removeprefix("CTI_").lower().split("__")
    if path[-1].endswith("_file"):
        path[-1] = path[-1].removesuffix("_file")
    model: type[BaseModel] = Settings
    for part in path:
        field = model.model_fields.get(part)
        if field is None:
            return False
        annotation = field.annotation
        model = (
            annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel)
            else BaseModel
        )
    return True


def _guide_commands() -> list[list[str]]:
    """Every ``/opt/cti/venv/bin/cti ...`` the guide tells a deployer to run, continuation
    lines joined, up to the end of its code span or shell command."""
    text = GUIDE.read_text(encoding="utf-8").replace("\\\n", " ")
    text = re.sub(r"\n\s+(?=[^`\n]*`)", " ", text)  # an inline command broken over lines
    found = re.findall(r"(/opt/cti/venv/bin/cti(?:-agi)?\b[^`\n&|;\"]*)", text)
    return [shlex.split(command) for command in found]


def test_the_units_start_commands_that_exist() -> None:
    starts = [
        shlex.split(value)
        for path in UNITS
        for key, value in _unit_lines(path)
        if key.startswith("Exec")
    ]
    assert ["/opt/cti/venv/bin/cti", "serve"] in starts
    for argv in starts:
        _check_command(argv)


def test_the_units_set_only_settings_that_exist() -> None:
    variables = [
        value.partition("=")[0]
        for path in UNITS
        for key, value in _unit_lines(path)
        if key == "Environment"
    ]
    assert "CTI_AMI__SECRET_FILE" in variables
    assert [v for v in variables if not _setting_exists(v)] == []


def test_the_setting_check_would_notice_a_misspelt_one() -> None:
    assert _setting_exists("CTI_UI__COOKIE_SECURE")
    assert _setting_exists("CTI_DATABASE__PASSWORD_FILE")
    assert not _setting_exists("CTI_UI__COOKIE_SECUR")
    assert not _setting_exists("CTI_DATABASE__PASSWORD__URL")


def test_the_command_check_would_notice_a_wrong_flag() -> None:
    _check_command(["cti", "dialplan", "render", "--out", "x"])
    with pytest.raises(click.UsageError):
        _check_command(["cti", "serve", "--port", "1"])
    with pytest.raises(click.UsageError):
        _check_command(["cti", "dialplan", "render"])  # --out is required


def test_every_command_in_the_guide_exists() -> None:
    commands = _guide_commands()
    assert {" ".join(argv[1:3]) for argv in commands} >= {"dialplan render", "crm migrate"}
    for argv in commands:
        _check_command(argv)


def test_the_guides_settings_file_loads(tmp_path: Path) -> None:
    (block,) = re.findall(r"```toml\n(.*?)```", GUIDE.read_text(encoding="utf-8"), re.DOTALL)
    example = tmp_path / "cti.toml"
    example.write_text(block, encoding="utf-8")
    settings = load_settings(example, ami={"secret": "not-in-the-file"})
    assert settings.ui.cookie_secure
    assert not settings.dialplan.simulation
    assert settings.http.host == "127.0.0.1"


def test_the_proxy_upgrades_the_desktops_websocket_to_the_servers_port() -> None:
    text = NGINX.read_text(encoding="utf-8")
    upstream = re.search(r"upstream cti \{\s*server 127\.0\.0\.1:(\d+);", text)
    assert upstream is not None
    assert int(upstream[1]) == HttpSettings().port
    websocket = re.search(r"location = /ui/ws \{(.*?)\}", text, re.DOTALL)
    assert websocket is not None
    assert "proxy_set_header Upgrade    $http_upgrade;" in websocket[1]
    assert "proxy_set_header Connection $connection_upgrade;" in websocket[1]
