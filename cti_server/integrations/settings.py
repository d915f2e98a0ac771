"""The ``[integrations]`` settings: webhook subscriptions and delivery limits.

A webhook's signing secret never sits in the settings file: ``secret_env`` names the environment
variable that holds it (at least 16 characters), checked when the settings are read.
"""

from __future__ import annotations

import os
import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cti_server.integrations.access import BadTopics, Topics

MIN_SECRET = 16
_URL = re.compile(r"^https?://[^\s/?#]+[^\s]*$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WebhookSettings(_Section):
    """One receiver: every event of ``topics`` is POSTed, signed, to ``url``."""

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,40}$")
    url: str = Field(description="http(s) address that receives the POSTs")
    topics: tuple[str, ...] = Field(("*",), description="patterns: 'call.*', 'complaint.detected'")
    secret_env: str = Field(
        pattern=r"^[A-Z_][A-Z0-9_]{0,79}$",
        description="the environment variable holding the signing secret",
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not _URL.match(value):
            raise ValueError("must be an http:// or https:// address")
        return value

    @field_validator("topics")
    @classmethod
    def _known_topics(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        try:
            return Topics.parse(value).patterns
        except BadTopics as exc:
            raise ValueError(str(exc)) from None

    @field_validator("secret_env")
    @classmethod
    def _secret_set(cls, value: str) -> str:
        if len(os.environ.get(value, "")) < MIN_SECRET:
            raise ValueError(f"the environment variable {value} must hold at least 16 characters")
        return value

    def secret(self) -> bytes:
        return os.environ[self.secret_env].encode("utf-8")


class IntegrationsSettings(_Section):
    """The event stream (``/api/events/stream``) and signed webhooks."""

    webhooks: tuple[WebhookSettings, ...] = ()
    queue_size: int = Field(1000, ge=1, le=100_000, description="events waiting per receiver")
    max_attempts: int = Field(6, ge=1, le=20, description="tries of one delivery, then dropped")
    backoff_seconds: float = Field(1.0, gt=0, le=60, description="first wait between tries")
    max_backoff_seconds: float = Field(60.0, gt=0, le=3600, description="longest wait")
    timeout_seconds: float = Field(10.0, gt=0, le=60, description="per POST")
    identify_seconds: float = Field(2.0, gt=0, le=10, description="customer look-up deadline")

    @field_validator("webhooks")
    @classmethod
    def _unique_names(cls, value: tuple[WebhookSettings, ...]) -> tuple[WebhookSettings, ...]:
        names = [hook.name for hook in value]
        if len(names) != len(set(names)):
            raise ValueError("webhook names must be unique")
        return value
