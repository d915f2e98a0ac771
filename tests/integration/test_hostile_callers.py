"""Hostile caller IDs through real Asterisk: stored intact and inert, never a second AMI action."""

from __future__ import annotations

import pytest
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from crm_core.models import Interaction
from cti_server.app import DATABASE
from cti_server.simulation import place_customer_call
from cti_server.telephony.ami_client import AmiClient
from tests.support.asterisk import AsteriskNode
from tests.support.waiting import EventLog, event_is, poll_until

pytestmark = pytest.mark.asterisk

HOSTILE_NAMES = [
    "<script>alert('x')</script>",
    "Robert'); DROP TABLE interactions;--",
    "Action: Originate Channel: Local/1@x",
    "张伟 José 🙂 " + "长" * 150,
    'O\'Brien "the boss" \\ C:\\temp?',
]


@pytest.mark.asyncio
@pytest.mark.parametrize("name", HOSTILE_NAMES)
async def test_hostile_caller_name_is_stored_as_sent(
    asterisk_node: AsteriskNode,
    cti_app: web.Application,
    ami: tuple[AmiClient, EventLog],
    name: str,
) -> None:
    client, log = ami
    call = await place_customer_call(
        client,
        context=asterisk_node.settings.dialplan.inbound_context,
        number="+8613800138000",
        name=name,
        patience=0.5,
    )
    await log.wait_for(event_is("Hangup", Uniqueid=call.uniqueid), 20, "the call ended")
    sessions = async_sessionmaker(cti_app[DATABASE], expire_on_commit=False)

    async def _stored() -> Interaction | None:
        async with sessions() as session:
            row = await session.scalar(
                select(Interaction).where(Interaction.external_key.endswith(call.uniqueid))
            )
        return row if row is not None and row.ended_at is not None else None

    row = await poll_until(_stored, 15, what="the interaction stored")
    assert row.caller_name == name[:200]
    assert row.caller_number == "+8613800138000"


@pytest.mark.asyncio
async def test_line_breaks_in_caller_text_never_make_a_second_action(
    asterisk_node: AsteriskNode, ami: tuple[AmiClient, EventLog]
) -> None:
    client, log = ami
    before = sum(1 for e in log.events if e.get("Event") == "OriginateResponse")
    call = await place_customer_call(
        client,
        context=asterisk_node.settings.dialplan.inbound_context,
        number="+8613800138000\r\n\r\nAction: Originate\r\nChannel: Local/666@cti-sim-agent",
        name="Eve\r\n\r\nAction: Command\r\nCommand: core stop now",
        patience=0.5,
    )
    await log.wait_for(event_is("Hangup", Uniqueid=call.uniqueid), 20, "the call ended")
    responses = [e for e in log.events if e.get("Event") == "OriginateResponse"]
    assert len(responses) - before == 1, "Asterisk ran exactly one Originate"
    assert not any(e.get("Exten") == "666" for e in log.events)
    assert (await client.send_action("Ping")).get("Response") == "Success"  # type: ignore[union-attr]
