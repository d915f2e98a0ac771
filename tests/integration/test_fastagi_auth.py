"""Only our Asterisk drives the FastAGI port: a local process without the dialplan's key gets the
challenge and nothing else, on the inbound route and the survey route alike, and changes nothing
in the CRM; with the key (as the rendered dialplan has it) the same requests work.

The whole server runs here (`cti serve`'s application, in this process); Asterisk is played by
the test over the socket, as a process on the same host would."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.customers import create_customer
from crm_core.models import Interaction
from crm_core.schemas import CustomerIn, TransactionIn
from crm_core.valuation import add_transaction
from crm_core.value import ValuePolicy
from cti_server.app import AGI, SCHEMA_READY, SESSIONS, SETTINGS, build_app
from cti_server.config import Settings, load_settings
from cti_server.telephony.fastagi import FastAgiServer, asterisk_key
from tests.support.agi_peer import CHALLENGE, challenge_answer, connection, read_until_closed
from tests.support.ports import free_port
from tests.support.waiting import poll_until

AMI_SECRET = "fastagi-auth-test-secret"
NUMBER = "+8613800138000"
TIMEOUT = 10.0
Sessions = async_sessionmaker[AsyncSession]


def _settings(tmp_path: Path) -> Settings:
    return load_settings(
        None,
        ami={"secret": AMI_SECRET, "port": free_port()},  # no Asterisk: AMI stays down
        agi={"port": free_port()},
        http={"port": free_port()},
        speech={"port": free_port()},
        database={"url": f"sqlite+aiosqlite:///{tmp_path / 'cti.db'}"},
        recorder={"spool_path": str(tmp_path / "spool.jsonl"), "retry_seconds": 0.2},
    )


@pytest_asyncio.fixture
async def server(tmp_path: Path) -> AsyncIterator[web.Application]:
    app = build_app(_settings(tmp_path))
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await asyncio.wait_for(app[SCHEMA_READY].wait(), TIMEOUT)
        async with app[SESSIONS]() as session, session.begin():
            data = {"name": "Wang Fang", "phones": [{"number": NUMBER}]}
            customer = await create_customer(session, CustomerIn.model_validate(data), "CN")
            order = TransactionIn(amount=Decimal("4321"), at=datetime.now(UTC) - timedelta(1))
            await add_transaction(session, customer.id, order, ValuePolicy())
        yield app
    finally:
        await runner.cleanup()


def _request(script: str, uniqueid: str) -> bytes:
    return (
        "agi_network: yes\n"
        f"agi_network_script: {script}\n"
        f"agi_request: agi://127.0.0.1/{script}\n"
        "agi_channel: PJSIP/trunk-00000001\n"
        f"agi_uniqueid: {uniqueid}\n"
        f"agi_callerid: {NUMBER}\n"
        "agi_calleridname: Wang Fang\n"
        "\n"
    ).encode()


def _asterisk(linkedid: str, key: str) -> Callable[[bytes], bytes | None]:
    """Our Asterisk holding ``key``: the challenge answered, the channel's variables, a caller
    who rates the call 1 and wants no comment, and who hangs up at the inbound menu."""

    def reply(line: bytes) -> bytes | None:
        if CHALLENGE.match(line):
            return challenge_answer(line, key)
        command = line.decode()
        if command.startswith("GET FULL VARIABLE"):
            values = {"${CHANNEL(linkedid)}": linkedid, "${MEMBERNAME}": "PJSIP/8101"}
            value = next((v for k, v in values.items() if k in command), "")
            return f"200 result=1 ({value})\n".encode() if value else b"200 result=0\n"
        if command.startswith("GET DATA"):
            return b"200 result=1\n"  # the survey's score: 1
        if command.startswith("GET OPTION"):
            return b"200 result=-1 endpos=0\n"  # the caller hangs up at a menu
        return b"200 result=0 endpos=0\n"

    return reply


async def _play(port: int, request: bytes, reply: Callable[[bytes], bytes | None]) -> list[bytes]:
    """One FastAGI session as a peer on this host plays it; what the server sent, in order."""
    sent: list[bytes] = []
    async with connection(port) as (reader, writer):
        writer.write(request)
        await writer.drain()
        while True:
            line = await asyncio.wait_for(reader.readline(), TIMEOUT)
            if not line:
                return sent
            sent.append(line)
            answer = reply(line)
            if answer is None:
                sent.append(await read_until_closed(reader, TIMEOUT))
                return sent
            writer.write(answer)
            await writer.drain()


async def _interactions(sessions: Sessions) -> list[Interaction]:
    async with sessions() as session:
        return list(await session.scalars(select(Interaction)))


@pytest.mark.asyncio
async def test_a_local_process_without_the_key_gets_nothing_and_changes_nothing(
    server: web.Application,
) -> None:
    agi: FastAgiServer = server[AGI]
    port = server[SETTINGS].agi.port
    wrong = asterisk_key("a guess at the AMI secret")
    for script in ("inbound", "survey"):
        # a forged answer: the hash with another key; then one that echoes the nonce back
        for forged in (_asterisk("1700000000.9", wrong), _echo):
            sent = await _play(port, _request(script, "1700000000.9"), forged)
            assert len(sent) == 1, sent  # the challenge, then the server hung up
            assert CHALLENGE.match(sent[0])
    assert agi.status()["refused_unproven"] == 4
    assert await _interactions(server[SESSIONS]) == []

    # our Asterisk, holding the key the rendered dialplan holds, is served on both routes
    key = asterisk_key(AMI_SECRET)
    sent = await _play(port, _request("inbound", "1700000001.1"), _asterisk("1700000001.1", key))
    assert any(b"CTI_QUEUE" in line or b"STREAM FILE" in line for line in sent)

    async def the_call() -> Interaction | None:
        rows = await _interactions(server[SESSIONS])
        return rows[0] if rows and rows[0].ivr_path else None

    call = await poll_until(the_call, TIMEOUT, what="the keyed call in the CRM")
    assert call.external_key.endswith("1700000001.1")
    assert call.customer_id is not None
    await _play(port, _request("survey", "1700000001.2"), _asterisk("1700000001.1", key))

    async def rated() -> int | None:
        rows = await _interactions(server[SESSIONS])
        return rows[0].survey_score if len(rows) == 1 else None

    assert await poll_until(rated, TIMEOUT, what="the survey score") == 1
    async with server[SESSIONS]() as session:
        assert await session.scalar(select(func.count()).select_from(Interaction)) == 1


def _echo(line: bytes) -> bytes | None:
    """A peer that answers the challenge with the nonce it read (the old in-step check's answer)."""
    match = CHALLENGE.match(line)
    return b"200 result=1 (" + match.group(1) + b")\n" if match else b"200 result=0\n"
