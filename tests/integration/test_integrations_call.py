"""A real call through Asterisk and the CTI server reaches a webhook as public events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from jsonschema import Draft202012Validator

from crm_core.customers import create_customer
from crm_core.schemas import CustomerIn
from cti_server.app import SCHEMA_READY, SESSIONS
from cti_server.integrations import signing
from cti_server.integrations.settings import IntegrationsSettings, WebhookSettings
from cti_server.telephony.ami_client import AmiClient
from tests.conftest import sim_agents
from tests.support.asterisk import AsteriskNode
from tests.support.live_calls import call_through_ivr, serving
from tests.support.waiting import EventLog
from tests.support.webhook_receiver import Receiver, webhook_receiver

pytestmark = pytest.mark.asterisk

DOCS = Path(__file__).resolve().parents[2] / "docs" / "events"
SECRET = "whsec-integration-0123456789"
NUMBER = "+8613800138077"  # a customer of this test only: the database is shared


@pytest_asyncio.fixture
async def hooked_app(
    asterisk_node: AsteriskNode, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[web.Application, Receiver]]:
    """`cti serve`'s application with a webhook for every call event."""
    monkeypatch.setenv("CTI_TEST_WEBHOOK_SECRET", SECRET)
    async with webhook_receiver() as receiver:
        hook = WebhookSettings(
            name="crm", url=receiver.url, topics=("call.*",), secret_env="CTI_TEST_WEBHOOK_SECRET"
        )
        settings = asterisk_node.settings.model_copy(
            update={"integrations": IntegrationsSettings(webhooks=(hook,))}
        )
        async with serving(settings) as app:
            yield app, receiver


@pytest.mark.asyncio
async def test_a_call_reaches_the_webhook_as_arrived_ringing_answered_ended(
    asterisk_node: AsteriskNode,
    hooked_app: tuple[web.Application, Receiver],
    ami: tuple[AmiClient, EventLog],
) -> None:
    app, receiver = hooked_app
    client, _log = ami
    settings = asterisk_node.settings
    await asyncio.wait_for(app[SCHEMA_READY].wait(), 20)
    async with app[SESSIONS]() as session, session.begin():
        person = {"name": "Zhang Wei", "phones": [{"number": NUMBER}]}
        customer = await create_customer(session, CustomerIn.model_validate(person), "CN")
    async with sim_agents(client, "support", ["1001"]):
        call = await call_through_ivr(
            ami, asterisk_node, NUMBER, "Zhang", dialed="100", audio="cti/sim-hello", patience=30
        )

        def ended() -> bool:
            return any(
                b["type"] == "call.ended" and b["data"]["call_id"] == call.uniqueid
                for b in receiver.bodies()
            )

        await receiver.until(ended, timeout=40)
    events = [b for b in receiver.bodies() if b["data"]["call_id"] == call.uniqueid]
    kinds = [e["type"] for e in events]
    for kind in ("call.arrived", "call.ringing", "call.answered", "call.ended"):
        assert kind in kinds, kinds
    assert kinds.index("call.arrived") < kinds.index("call.answered") < kinds.index("call.ended")
    arrived = events[kinds.index("call.arrived")]
    assert arrived["data"]["caller"]["number"] == NUMBER
    assert arrived["data"]["customer"]["id"] == customer.id  # identified by the CRM
    assert arrived["data"]["customer"]["name"] == "Zhang Wei"
    assert arrived["node"] == settings.ami.node
    ended_event = events[kinds.index("call.ended")]
    assert ended_event["data"]["outcome"] == "answered"
    assert ended_event["data"]["agent"]["extension"] == "1001"
    metrics_url = f"http://127.0.0.1:{settings.http.port}/metrics"
    async with aiohttp.ClientSession() as http, http.get(metrics_url) as reply:
        metrics = await reply.text()
    assert 'cti_webhook_delivered_total{webhook="crm"}' in metrics
    assert 'cti_public_events_total{type="call.ended"}' in metrics
    for headers, body in receiver.posts:
        signing.verify(SECRET.encode(), headers[signing.HEADER], body)
        sent = json.loads(body)
        schema = json.loads((DOCS / f"{sent['type']}.v1.json").read_text("utf-8"))
        Draft202012Validator(schema).validate(sent)
