"""The ``[integrations]`` settings as ``cti serve`` reads them: a bad webhook names its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from cti_server.config import ConfigError, load_settings

SECRET = "whsec-config-0123456789"


def test_webhooks_are_read_from_the_settings_file_with_their_secret_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CTI_CRM_WEBHOOK_SECRET", SECRET)
    config = tmp_path / "cti.toml"
    config.write_text(
        """
[ami]
secret = "s3cret-enough"

[integrations]
max_attempts = 4

[[integrations.webhooks]]
name = "crm"
url = "https://crm.example/hooks/cti"
topics = ["call.*", "complaint.detected"]
secret_env = "CTI_CRM_WEBHOOK_SECRET"
""",
        encoding="utf-8",
    )
    settings = load_settings(config)
    (hook,) = settings.integrations.webhooks
    assert (hook.name, hook.topics, settings.integrations.max_attempts) == (
        "crm",
        ("call.*", "complaint.detected"),
        4,
    )
    assert hook.secret() == SECRET.encode()


def test_a_webhook_whose_secret_is_not_set_stops_the_start_naming_the_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CTI_CRM_WEBHOOK_SECRET", raising=False)
    hook = {"name": "crm", "url": "https://crm.example/h", "secret_env": "CTI_CRM_WEBHOOK_SECRET"}
    with pytest.raises(ConfigError) as refused:
        load_settings(None, ami={"secret": "x"}, integrations={"webhooks": [hook]})
    message = str(refused.value)
    assert "integrations.webhooks.0.secret_env" in message
    assert "CTI_CRM_WEBHOOK_SECRET must hold at least 16 characters" in message
