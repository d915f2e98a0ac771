"""Settings from TOML, the environment and ``*_FILE`` secrets; one clear message per bad key."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cti_server.config import ConfigError, load_settings

CTI_SCRIPT = Path(sys.executable).parent / "cti"


def _config_error(config_file: Path | None = None, **overrides: object) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(config_file, **overrides)
    return str(info.value)


def test_missing_secret_names_the_key_and_its_variable() -> None:
    message = _config_error()
    assert message.startswith("configuration error:")
    assert "ami.secret" in message
    assert "CTI_AMI__SECRET" in message


def test_missing_secret_with_other_ami_keys_names_the_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CTI_AMI__PORT", "5039")
    message = _config_error()
    assert "ami.secret" in message
    assert "CTI_AMI__SECRET" in message


def test_bad_port_from_env_names_the_key_and_shows_the_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CTI_AMI__SECRET", "x")
    monkeypatch.setenv("CTI_AMI__PORT", "abc")
    message = _config_error()
    assert "ami.port" in message
    assert "CTI_AMI__PORT" in message
    assert "'abc'" in message
    assert "ami.secret" not in message


def test_secret_with_a_line_break_is_rejected_without_echoing_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CTI_AMI__SECRET", "hunter2\nAction: Command")
    message = _config_error()
    assert "ami.secret" in message
    assert "hunter2" not in message
    assert "Action: Command" not in message


def test_secret_passed_in_code_is_not_echoed() -> None:
    message = _config_error(ami={"secret": "top[secret]value"})
    assert "ami.secret" in message
    assert "top[secret]value" not in message
    assert "secret]value" not in message


def test_blank_secret_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTI_AMI__SECRET", "   ")
    assert "ami.secret" in _config_error()


def test_other_secrets_are_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTI_AMI__SECRET", "x")
    message = _config_error(database={"password": ["pw-in-a-list"]})
    assert "database.password" in message
    assert "pw-in-a-list" not in message


def test_misspelt_secret_key_does_not_echo_the_value(tmp_path: Path) -> None:
    config = tmp_path / "cti.toml"
    config.write_text('[ami]\nsecert = "hunter2"\n', encoding="utf-8")
    message = _config_error(config)
    assert "ami.secert" in message
    assert "hunter2" not in message


def test_env_overrides_the_toml_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "cti.toml"
    config.write_text(
        '[ami]\nsecret = "from-file"\nport = 1234\nhost = "10.0.0.1"\n\n[agi]\nport = 4600\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("CTI_AMI__PORT", "2345")
    monkeypatch.setenv("CTI_AMI__SECRET", "from-env")
    settings = load_settings(config)
    assert settings.ami.port == 2345
    assert settings.ami.secret.get_secret_value() == "from-env"
    assert settings.ami.host == "10.0.0.1"  # not overridden: the file's value stays
    assert settings.agi.port == 4600


def test_config_file_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "cti.toml"
    config.write_text('[ami]\nsecret = "from-file"\nnode = "pbx7"\n', encoding="utf-8")
    monkeypatch.setenv("CTI_CONFIG_FILE", str(config))
    settings = load_settings()
    assert settings.ami.node == "pbx7"


def test_unreadable_or_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    assert "cannot read" in _config_error(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[ami\n", encoding="utf-8")
    assert str(broken) in _config_error(broken)


def test_secret_from_file_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret_file = tmp_path / "ami-secret"
    secret_file.write_text("file-secret\n", encoding="utf-8")
    monkeypatch.setenv("CTI_AMI__SECRET_FILE", str(secret_file))
    settings = load_settings()
    assert settings.ami.secret.get_secret_value() == "file-secret"


def test_secret_file_that_cannot_be_read_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CTI_AMI__SECRET_FILE", str(tmp_path / "nope"))
    message = _config_error()
    assert "CTI_AMI__SECRET_FILE" in message


def _run_cti(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("CTI_")}
    clean.update(env)
    return subprocess.run(
        [str(CTI_SCRIPT), *args],
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cti_serve_without_secret_exits_with_one_line() -> None:
    result = _run_cti("serve")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("configuration error:")
    assert "ami.secret" in lines[0]
    assert "CTI_AMI__SECRET" in lines[0]


def test_cti_serve_with_bad_port_exits_with_one_line() -> None:
    result = _run_cti("serve", CTI_AMI__SECRET="x", CTI_AMI__PORT="abc")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("configuration error:")
    assert "ami.port" in lines[0]
    assert "'abc'" in lines[0]


@pytest.mark.parametrize(
    ("models", "problem"),
    [
        ({"ko": "/nowhere/model"}, "not a Vosk model directory"),
        ({"korean": "."}, "not a two-letter language code"),
    ],
)
def test_a_speech_model_that_cannot_load_is_refused_at_start(
    models: dict[str, str], problem: str
) -> None:
    message = _config_error(ami={"secret": "s"}, speech={"models": models})
    assert "speech.models" in message
    assert problem in message


def test_logging_settings_from_the_environment_and_a_bad_format_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CTI_AMI__SECRET", "x")
    monkeypatch.setenv("CTI_LOGGING__FORMAT", "json")
    monkeypatch.setenv("CTI_LOGGING__ACCESS_LOG", "false")
    settings = load_settings()
    assert (settings.logging.format, settings.logging.access_log) == ("json", False)

    monkeypatch.setenv("CTI_LOGGING__FORMAT", "xml")
    message = _config_error()
    assert "logging.format" in message
    assert "CTI_LOGGING__FORMAT" in message
    assert "'xml'" in message


def test_complaints_default_to_a_contact_centers_rate_and_costs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CTI_AMI__SECRET", "x")
    complaints = load_settings().complaints
    assert (complaints.expected_rate, complaints.miss_cost, complaints.false_alarm_cost) == (
        0.05,
        5.0,
        1.0,
    )
    assert complaints.embeddings == "auto"
    monkeypatch.setenv("CTI_COMPLAINTS__EXPECTED_RATE", "0.2")
    monkeypatch.setenv("CTI_COMPLAINTS__EMBEDDINGS", "off")
    complaints = load_settings().complaints
    assert (complaints.expected_rate, complaints.embeddings) == (0.2, "off")


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("EXPECTED_RATE", "1", "complaints.expected_rate: Input should be less than 1"),
        ("EXPECTED_RATE", "0", "complaints.expected_rate: Input should be greater than 0"),
        ("MISS_COST", "-5", "complaints.miss_cost: Input should be greater than 0"),
        ("FALSE_ALARM_COST", "0", "complaints.false_alarm_cost: Input should be greater than 0"),
        ("MISS_COST", "inf", "complaints.miss_cost: Input should be a finite number"),
        ("EMBEDDINGS", "yes", "complaints.embeddings: Input should be 'auto', 'on' or 'off'"),
    ],
)
def test_bad_complaint_settings_name_the_key(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv("CTI_AMI__SECRET", "x")
    monkeypatch.setenv(f"CTI_COMPLAINTS__{variable}", value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert message in str(caught.value)
    assert f"CTI_COMPLAINTS__{variable}" in str(caught.value)


def test_embeddings_on_without_the_extra_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CTI_AMI__SECRET", "x")
    monkeypatch.setenv("CTI_COMPLAINTS__EMBEDDINGS", "on")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match="needs the embeddings extra"):
        load_settings()
