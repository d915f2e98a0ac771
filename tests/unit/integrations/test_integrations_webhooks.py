"""Webhooks against a real HTTP receiver on 127.0.0.1: signed, retried, bounded, never blocking."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from cti_server.bus import MemoryBus
from cti_server.integrations import signing
from cti_server.integrations.metrics import IntegrationsCollector
from cti_server.integrations.service import IntegrationService
from cti_server.integrations.settings import IntegrationsSettings, WebhookSettings
from cti_server.integrations.webhooks import Webhooks
from tests.support import domain_events as make
from tests.support.waiting import poll_until
from tests.support.webhook_receiver import Receiver, webhook_receiver

SECRET = "whsec-test-0123456789abcdef"


@pytest_asyncio.fixture
async def receivers() -> AsyncIterator[Callable[[], Awaitable[Receiver]]]:
    async with contextlib.AsyncExitStack() as stack:

        async def start() -> Receiver:
            return await stack.enter_async_context(webhook_receiver())

        yield start


def _settings(
    monkeypatch: pytest.MonkeyPatch, *hooks: tuple[str, str, tuple[str, ...]], **limits: Any
) -> IntegrationsSettings:
    monkeypatch.setenv("CTI_TEST_HOOK_SECRET", SECRET)
    return IntegrationsSettings(
        webhooks=tuple(
            WebhookSettings(name=name, url=url, topics=topics, secret_env="CTI_TEST_HOOK_SECRET")
            for name, url, topics in hooks
        ),
        **{"backoff_seconds": 0.01, **limits},
    )


def _true(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def _check() -> bool:
        return check()

    return _check


@pytest_asyncio.fixture
async def bus() -> MemoryBus:
    return MemoryBus()


async def _running(bus: MemoryBus, settings: IntegrationsSettings) -> IntegrationService:
    service = IntegrationService(bus, Webhooks(settings))
    await service.start()
    return service


def _call(bus: MemoryBus, linkedid: str) -> None:
    for event in (
        make.arrived(linkedid),
        make.ringing(linkedid, "agent-1001"),
        make.answered(linkedid, "agent-1001"),
        make.ended(linkedid, "agent-1001"),
        make.complaint(linkedid),
    ):
        bus.publish(event)


@pytest.mark.asyncio
async def test_each_event_of_the_topics_arrives_signed_with_the_subscriptions_secret(
    monkeypatch: pytest.MonkeyPatch, receivers: Callable[[], Awaitable[Receiver]], bus: MemoryBus
) -> None:
    receiver = await receivers()
    settings = _settings(monkeypatch, ("crm", receiver.url, ("call.*",)))
    service = await _running(bus, settings)
    try:
        _call(bus, "c1")
        await receiver.until(lambda: len(receiver.posts) == 4)
    finally:
        await service.close()
    assert [b["type"] for b in receiver.bodies()] == [
        "call.arrived",
        "call.ringing",
        "call.answered",
        "call.ended",
    ]  # complaint.detected is not among its topics
    for headers, body in receiver.posts:
        signing.verify(SECRET.encode(), headers[signing.HEADER], body)
        assert headers["Content-Type"] == "application/json"
        sent = json.loads(body)
        assert headers["X-CTI-Event"] == sent["type"]
        assert headers["X-CTI-Event-Id"] == sent["id"]
        assert (sent["version"], sent["node"], sent["data"]["call_id"]) == (1, make.NODE, "c1")
        with pytest.raises(signing.BadSignature):
            signing.verify(b"another secret of the same size!", headers[signing.HEADER], body)
        with pytest.raises(signing.BadSignature):
            signing.verify(SECRET.encode(), headers[signing.HEADER], body.replace(b"c1", b"c2"))


def test_a_signature_from_too_long_ago_is_refused() -> None:
    body = b'{"type": "call.ended"}'
    old = signing.sign(SECRET.encode(), body, timestamp=1_000_000_000)
    with pytest.raises(signing.BadSignature, match="tolerance"):
        signing.verify(SECRET.encode(), old, body)
    with pytest.raises(signing.BadSignature, match="timestamp"):
        signing.verify(SECRET.encode(), "v1=abc", body)


@pytest.mark.asyncio
async def test_a_receiver_that_fails_twice_gets_the_event_on_the_third_try(
    monkeypatch: pytest.MonkeyPatch, receivers: Callable[[], Awaitable[Receiver]], bus: MemoryBus
) -> None:
    receiver = await receivers()
    receiver.statuses = [500, 500]
    service = await _running(bus, _settings(monkeypatch, ("crm", receiver.url, ("call.ended",))))
    try:
        bus.publish(make.ended("c1", "agent-1001"))
        hook = service.webhooks.hooks[0]
        await poll_until(_true(lambda: hook.stats.delivered == 1), 5, what="the delivery")
    finally:
        await service.close()
    ids = {b["id"] for b in receiver.bodies()}
    assert len(ids) == 1, "a retry is the same event (the receiver's idempotency key)"
    assert (hook.stats.retried, hook.stats.failed, hook.stats.last_error) == (2, 0, "HTTP 500")
    for headers, body in receiver.posts:
        signing.verify(SECRET.encode(), headers[signing.HEADER], body)


@pytest.mark.asyncio
async def test_a_delivery_that_keeps_failing_is_given_up_logged_and_counted(
    monkeypatch: pytest.MonkeyPatch,
    receivers: Callable[[], Awaitable[Receiver]],
    bus: MemoryBus,
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver = await receivers()
    receiver.statuses = [503, 503, 503]
    settings = _settings(monkeypatch, ("crm", receiver.url, ("call.*",)), max_attempts=3)
    service = await _running(bus, settings)
    hook = service.webhooks.hooks[0]
    try:
        with caplog.at_level(logging.WARNING, "cti_server.integrations.webhooks"):
            bus.publish(make.ended("c1", "agent-1001"))
            bus.publish(make.ended("c2", "agent-1001"))  # the next one goes through
            await poll_until(_true(lambda: hook.stats.delivered == 1), 5, what="the delivery")
    finally:
        await service.close()
    assert [b["data"]["call_id"] for b in receiver.bodies()] == ["c1", "c1", "c1", "c2"]
    assert (hook.stats.failed, hook.stats.delivered) == (1, 1)
    registry = CollectorRegistry()
    registry.register(IntegrationsCollector(service))
    scraped = {
        (sample.name, tuple(sample.labels.values())): sample.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for sample in family.samples
    }
    assert scraped[("cti_webhook_failed_total", ("crm",))] == 1
    assert scraped[("cti_webhook_retries_total", ("crm",))] == 2
    assert scraped[("cti_webhook_delivered_total", ("crm",))] == 1
    assert scraped[("cti_public_events_total", ("call.ended",))] == 2
    assert "webhook crm: gave up on call.ended" in caplog.text
    assert "after 3 tries: HTTP 503" in caplog.text
    assert SECRET not in caplog.text


@pytest.mark.asyncio
async def test_a_receiver_that_hangs_holds_up_nobody_and_drops_its_oldest(
    monkeypatch: pytest.MonkeyPatch, receivers: Callable[[], Awaitable[Receiver]], bus: MemoryBus
) -> None:
    stuck = await receivers()
    stuck.hold = asyncio.Event()
    healthy = await receivers()
    settings = _settings(
        monkeypatch,
        ("stuck", stuck.url, ("call.ended",)),
        ("healthy", healthy.url, ("call.ended",)),
        queue_size=5,
    )
    service = await _running(bus, settings)
    try:
        bus.publish(make.ended("first", "agent-1001"))
        await stuck.until(lambda: len(stuck.posts) == 1)  # in flight, held
        for n in range(50):
            bus.publish(make.ended(f"c{n}", "agent-1001"))  # returns at once: nothing waits
            await healthy.until(lambda n=n: len(healthy.posts) == n + 2)  # type: ignore[misc]
        hook = service.webhooks.hooks[0]
        assert hook.status()["queued"] == 5
        assert hook.stats.dropped == 45
        stuck.hold.set()
        await stuck.until(lambda: len(stuck.posts) == 6)
    finally:
        stuck.hold.set()
        await service.close()
    assert [b["data"]["call_id"] for b in stuck.bodies()] == [
        "first",
        *(f"c{n}" for n in range(45, 50)),
    ]


def test_a_webhook_without_its_secret_in_the_environment_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CTI_NO_SUCH_SECRET", raising=False)
    with pytest.raises(ValidationError, match="CTI_NO_SUCH_SECRET must hold at least 16"):
        WebhookSettings(name="crm", url="https://crm.example/hook", secret_env="CTI_NO_SUCH_SECRET")
    monkeypatch.setenv("CTI_SHORT", "short")
    with pytest.raises(ValidationError, match="CTI_SHORT must hold"):
        WebhookSettings(name="crm", url="https://crm.example/hook", secret_env="CTI_SHORT")
    monkeypatch.setenv("CTI_GOOD", SECRET)
    with pytest.raises(ValidationError, match="matches no event"):
        WebhookSettings(
            name="crm", url="https://crm.example/h", topics=("calls.*",), secret_env="CTI_GOOD"
        )
    with pytest.raises(ValidationError, match="http:// or https://"):
        WebhookSettings(name="crm", url="ftp://crm.example/h", secret_env="CTI_GOOD")


@pytest.mark.asyncio
async def test_only_the_leading_process_sends_webhooks(
    monkeypatch: pytest.MonkeyPatch, receivers: Callable[[], Awaitable[Receiver]], bus: MemoryBus
) -> None:
    receiver = await receivers()
    leading = False
    settings = _settings(monkeypatch, ("crm", receiver.url, ("call.ended",)))
    service = IntegrationService(bus, Webhooks(settings, is_leader=lambda: leading))
    await service.start()
    try:
        bus.publish(make.ended("while-following", "agent-1001"))
        await poll_until(_true(lambda: service.sent == 1), 5, what="the first translated")
        leading = True
        bus.publish(make.ended("while-leading", "agent-1001"))
        await receiver.until(lambda: len(receiver.posts) == 1)
        await poll_until(_true(lambda: service.sent == 2), 5, what="both translated")
    finally:
        await service.close()
    assert [b["data"]["call_id"] for b in receiver.bodies()] == ["while-leading"]
