"""Callers walking the inbound IVR on real Asterisk, pressing keys with SendDTMF."""

from __future__ import annotations

import shutil
import wave
from array import array
from collections.abc import AsyncIterator
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Literal

import pytest
import pytest_asyncio
import yaml
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from crm_core.customers import LookupResult, create_customer, lookup_by_caller_id
from crm_core.models import FollowUp, Interaction
from crm_core.pins import set_pin
from crm_core.schemas import CustomerIn, TransactionIn
from crm_core.valuation import add_transaction, recompute_value
from crm_core.value import ValuePolicy
from cti_server.app import DATABASE
from cti_server.asterisk.data import data_dir
from cti_server.config import IvrSettings
from cti_server.telephony.ami_client import AmiClient
from tests.conftest import sim_agents
from tests.support.agi import classic_agi, with_classic_agi
from tests.support.asterisk import AsteriskNode
from tests.support.live_calls import (
    call_through_ivr,
    ivr_variables,
    running_ivr_app,
    stored_interaction,
)
from tests.support.waiting import EventLog, agent_complete, event_is, poll_until

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]

VIP = ("王总", "+8613911112222")
PIN = "4711"


@pytest_asyncio.fixture
async def ivr_app(
    asterisk_node: AsteriskNode, tmp_path: Path, transport: Literal["fastagi", "agi"]
) -> AsyncIterator[web.Application]:
    ivr = IvrSettings(inbound_flow="main", transport=transport)
    async with running_ivr_app(asterisk_node, tmp_path, ivr) as app:
        sessions = async_sessionmaker(app[DATABASE], expire_on_commit=False)
        async with sessions() as session, session.begin():
            vip = await create_customer(
                session,
                CustomerIn.model_validate(
                    {
                        "name": VIP[0],
                        "phones": [{"number": VIP[1]}],
                        "tier_override": "platinum",
                        "language": "zh",
                        "account_number": "A12345678",
                    }
                ),
                "CN",
            )
            await recompute_value(session, vip.id, ValuePolicy())
            await add_transaction(  # what "3, last order" reads back
                session,
                vip.id,
                TransactionIn(amount=Decimal(1234), at=datetime.now(UTC) - timedelta(days=3)),
                ValuePolicy(),
            )
        yield app


@pytest.mark.asyncio
async def test_known_vip_presses_1_for_billing_and_reaches_the_queue_with_attributes(
    asterisk_node: AsteriskNode, ivr_app: web.Application, ami: tuple[AmiClient, EventLog]
) -> None:
    client, log = ami
    async with sim_agents(client, "support", ["8001"]):
        call = await call_through_ivr(
            ami,
            asterisk_node,
            VIP[1],
            VIP[0],
            dtmf="1",
            # inside the menu (its 8 s prompt, then the wait for a key) also when cti-agi, a
            # process per call, starts seconds late on a busy machine
            pre_wait=7,
            patience=30,
        )
        variables = await ivr_variables(log, call)
        await log.wait_for(agent_complete(call.uniqueid), 30, "answered")
    assert variables["CTI_QUEUE"] == "support"
    assert variables["CTI_ATTR_INTENT"] == "billing"
    assert variables["CTI_ATTR_SKILL"] == "billing"
    assert variables["CTI_ATTR_TIER"] == "platinum"
    assert variables["CTI_ATTR_LANGUAGE"] == "zh"
    assert variables["CTI_ATTR_PRIORITY"] == "high"
    row = await stored_interaction(ivr_app, call)
    steps = [s["step"] for s in row.ivr_path]
    assert steps == [
        "identify",
        "opening_hours",
        "welcome",
        "menu",
        "billing",
        "long_wait",
        "by_tier",
        "priority",
    ]
    assert next(s for s in row.ivr_path if s["step"] == "menu")["input"] == "1"
    assert row.customer_id is not None
    assert row.routing["attributes"]["intent"] == "billing"
    assert row.answered_at is not None


async def _vip_has_a_pin(app: web.Application) -> LookupResult:
    """The VIP's PIN set in the server's CRM; the VIP as the CRM finds them by caller ID."""
    sessions = async_sessionmaker(app[DATABASE], expire_on_commit=False)
    async with sessions() as session, session.begin():
        found = await lookup_by_caller_id(session, VIP[1], "CN")
        await set_pin(session, found.customers[0].id, PIN)
    return found


@pytest.mark.asyncio
async def test_a_customer_with_a_pin_types_it_and_it_is_nowhere_in_the_record(
    asterisk_node: AsteriskNode,
    ivr_app: web.Application,
    ami: tuple[AmiClient, EventLog],
    transport: str,
    tmp_path: Path,
) -> None:
    log = ami[1]
    found = await _vip_has_a_pin(ivr_app)
    # the PIN (and #) while it is asked, then 1 again and again until the menu takes it
    call = await call_through_ivr(
        ami,
        asterisk_node,
        VIP[1],
        VIP[0],
        dtmf=f"{PIN}#" + "ww1" * 16,
        pre_wait=5,
        patience=3,
    )
    variables = await ivr_variables(log, call)
    assert variables["CTI_ATTR_PIN_VERIFIED"] == "yes"
    assert variables["CTI_ATTR_TIER"] == "platinum"
    assert variables["CTI_ATTR_INTENT"] == "billing"
    row = await stored_interaction(ivr_app, call)
    assert row.ivr_path[0]["step"] == "identify"
    assert row.ivr_path[0]["input"] == "caller id, pin verified"
    assert row.ivr_inputs["pin"] == "***"
    assert row.customer_id == found.customers[0].id
    stored = repr((row.ivr_path, row.ivr_inputs, row.routing, row.recordings))
    assert PIN not in stored
    assert not any(PIN in value for value in variables.values())
    if transport == "agi":
        assert PIN not in (tmp_path / "cti-agi.log").read_text(encoding="utf-8")


@pytest.mark.asyncio
async def test_unknown_caller_identifies_by_account_number(
    asterisk_node: AsteriskNode, ivr_app: web.Application, ami: tuple[AmiClient, EventLog]
) -> None:
    log = ami[1]
    call = await call_through_ivr(
        ami,
        asterisk_node,
        "+8613700000001",
        "Stranger",
        dtmf="1wwww12345678#wwwwwwww2",
        pre_wait=2,
        patience=3,
    )
    variables = await ivr_variables(log, call)
    assert variables["CTI_ATTR_TIER"] == "platinum"
    assert variables["CTI_ATTR_INTENT"] == "sales"
    assert variables["CTI_ATTR_LANGUAGE"] == "zh"  # the customer's own, once known
    row = await stored_interaction(ivr_app, call)
    assert [s["step"] for s in row.ivr_path][:4] == [
        "identify",
        "choose_language",
        "english",
        "identify_account",
    ]
    assert row.ivr_inputs["account"] == "12345678"
    assert row.customer_id is not None


@pytest.mark.asyncio
async def test_caller_hanging_up_in_the_ivr_is_an_ivr_abandon_with_its_steps(
    asterisk_node: AsteriskNode, ivr_app: web.Application, ami: tuple[AmiClient, EventLog]
) -> None:
    call = await call_through_ivr(
        ami, asterisk_node, VIP[1], VIP[0], until="hung_up", within=30, pre_wait=1, patience=1
    )
    row = await stored_interaction(ivr_app, call)
    assert row.kind == "ivr_only"
    assert row.routing["ivr_outcome"] == "caller_gone"
    assert [s["step"] for s in row.ivr_path][:3] == ["identify", "opening_hours", "welcome"]
    assert row.queued_at is None
    # each step with its time, the one the caller hung up in too (a prompt playing: > 0)
    assert all(s["seconds"] >= 0 for s in row.ivr_path)
    assert row.ivr_path[-1]["seconds"] > 0, row.ivr_path


def _rated(row: Interaction) -> bool:
    return row.survey_score is not None


@pytest.mark.asyncio
async def test_survey_after_the_agent_hangs_up_is_stored_with_the_call(
    asterisk_node: AsteriskNode, ivr_app: web.Application, ami: tuple[AmiClient, EventLog]
) -> None:
    client = ami[0]
    async with sim_agents(client, "support", ["8002"]):
        # the caller walks the IVR (1: billing), talks, presses 4 once the agent is gone, then 1
        # to leave a comment, and hangs up some seconds into it
        call = await call_through_ivr(
            ami,
            asterisk_node,
            VIP[1],
            VIP[0],
            until="answered",
            within=40,
            dtmf="1" + "w" * 22 + "4ww1",
            pre_wait=4,
            patience=15,
        )
    row = await stored_interaction(
        ivr_app, call, within=40, ready=_rated, what="the survey score stored"
    )
    assert row.survey_score == 4
    assert row.answered_at is not None
    comments = [r for r in row.recordings if "/recordings/ivr/comment-" in r]
    assert comments, f"the spoken comment is stored with the call: {row.recordings}"
    assert comments[0].endswith(".wav")


@pytest_asyncio.fixture
async def quick_ivr_app(
    asterisk_node: AsteriskNode, tmp_path: Path, transport: Literal["fastagi", "agi"]
) -> AsyncIterator[web.Application]:
    """The main flow with a 1-second menu timeout, from a flow folder of this test's own."""
    flows = tmp_path / "flows"
    shutil.copytree(data_dir("ivr_flows"), flows)
    main_flow = yaml.safe_load((flows / "main.yaml").read_text(encoding="utf-8"))
    steps = main_flow["steps"]
    steps["menu"]["timeout"] = 1
    steps["identify"]["not_found"] = "welcome"  # strangers go straight to the menu
    for name in ("choose_language", "english", "chinese", "identify_account"):
        del steps[name]
    main_flow["steps"]["long_wait"]["conditions"][0]["at_least"] = 0  # always offer a callback
    (flows / "main.yaml").write_text(yaml.safe_dump(main_flow), encoding="utf-8")
    ivr = IvrSettings(inbound_flow="main", survey_flow=None, flows_dir=flows, transport=transport)
    async with running_ivr_app(asterisk_node, tmp_path, ivr) as app:
        yield app


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("dtmf", "expected_input", "patience"),
    # each key lands in a replay of the menu prompt (keys during the invalid prompt are lost)
    # silent: three plays of the menu prompt (8 s in English) and timeouts before the operator
    [("8wwwwww7wwwwww6", "8 7 6", 8), ("", "", 40)],
    ids=["three-invalid-keys", "silent-caller"],
)
async def test_invalid_keys_or_silence_lead_to_an_operator(
    asterisk_node: AsteriskNode,
    quick_ivr_app: web.Application,
    ami: tuple[AmiClient, EventLog],
    dtmf: str,
    expected_input: str,
    patience: float,
) -> None:
    log = ami[1]
    call = await call_through_ivr(
        ami, asterisk_node, "+8613700000002", "Tester", dtmf=dtmf, pre_wait=5, patience=patience
    )
    variables = await ivr_variables(log, call)
    assert variables["CTI_ATTR_INTENT"] == "operator"
    row = await stored_interaction(quick_ivr_app, call)
    menu = next(s for s in row.ivr_path if s["step"] == "menu")
    assert menu["input"] == expected_input
    assert [s["step"] for s in row.ivr_path][-1] == "operator"


@pytest.mark.asyncio
async def test_long_wait_offers_a_callback_that_becomes_a_follow_up(
    asterisk_node: AsteriskNode,
    quick_ivr_app: web.Application,
    ami: tuple[AmiClient, EventLog],
) -> None:
    log = ami[1]
    number = "+8613700000003"
    call = await call_through_ivr(
        ami,
        asterisk_node,
        number,
        "Busy Caller",
        until="hung_up",
        within=40,
        dtmf="1wwww1",
        pre_wait=5,
        patience=20,
    )
    assert not any(event_is("QueueCallerJoin", Linkedid=call.uniqueid)(e) for e in log.events), (
        "a caller who takes a callback does not wait in the queue"
    )
    row = await stored_interaction(quick_ivr_app, call)
    assert row.routing["ivr_outcome"] == "callback"
    sessions = async_sessionmaker(quick_ivr_app[DATABASE], expire_on_commit=False)

    async def _task() -> FollowUp | None:
        async with sessions() as session:
            return await session.scalar(select(FollowUp).where(FollowUp.interaction_id == row.id))

    task = await poll_until(_task, 15, what="the callback follow-up")
    assert task.kind == "callback"
    assert task.status == "open"
    assert "support" in task.note
    # the caller's place, kept: the queue, their position and wait as offered, when they called
    assert task.queue == asterisk_node.settings.dialplan.default_queue
    assert task.queue_position is not None
    assert task.queue_position >= 1
    assert task.estimated_wait == int(row.routing["attributes"]["estimated_wait"])
    assert task.joined_at is not None
    assert row.arrived_at is not None
    assert abs(task.joined_at - row.arrived_at) < timedelta(seconds=10)
    assert task.due_at == task.joined_at  # callbacks are due in the order callers called
    async with sessions() as session:
        found = await lookup_by_caller_id(session, number, "CN")
    assert [c.id for c in found.customers] == [task.customer_id]


def _wav_speech_seconds(path: Path) -> tuple[float, int]:
    """(seconds, loudest sample) of an 8 kHz 16-bit WAV file: real audio, not silence."""
    with wave.open(str(path), "rb") as audio:
        assert (audio.getframerate(), audio.getsampwidth()) == (8000, 2)
        frames = audio.readframes(audio.getnframes())
        seconds = audio.getnframes() / audio.getframerate()
    samples = array("h", frames)
    return seconds, max((abs(s) for s in samples), default=0)


@pytest.mark.asyncio
async def test_caller_pressing_9_leaves_a_voicemail_that_becomes_a_follow_up(
    asterisk_node: AsteriskNode, ivr_app: web.Application, ami: tuple[AmiClient, EventLog]
) -> None:
    # 9 during the menu, then the caller speaks (through the prompt and the beep, into the
    # recording) and hangs up, as most callers end a message
    call = await call_through_ivr(
        ami,
        asterisk_node,
        VIP[1],
        VIP[0],
        until="hung_up",
        within=60,
        dtmf="9!",
        audio="&".join(["cti/sim-hello"] * 8),
        pre_wait=6,
        patience=1,
    )
    row = await stored_interaction(ivr_app, call)
    steps = [s["step"] for s in row.ivr_path]
    assert steps[steps.index("menu") :][:2] == ["menu", "voicemail"]
    assert next(s for s in row.ivr_path if s["step"] == "menu")["input"] == "9"
    messages = [r for r in row.recordings if "/recordings/ivr/voicemail-" in r]
    assert len(messages) == 1, row.recordings
    sessions = async_sessionmaker(ivr_app[DATABASE], expire_on_commit=False)

    async def _task() -> FollowUp | None:
        async with sessions() as session:
            return await session.scalar(
                select(FollowUp).where(
                    FollowUp.interaction_id == row.id, FollowUp.kind == "voicemail"
                )
            )

    task = await poll_until(_task, 15, what="the voicemail follow-up")
    assert messages[0] in task.note
    # Asterisk wrote it in its spool, inside the chroot: real speech, not silence
    spool = asterisk_node.instance.dirs.spool
    assert messages[0].startswith(f"{spool}/recordings/ivr/")
    seconds, loudest = _wav_speech_seconds(asterisk_node.instance.chroot.inside(messages[0]))
    assert seconds >= 1.0
    assert loudest > 1000


@pytest.mark.asyncio
async def test_a_customer_who_typed_the_pin_pressing_3_hears_the_last_order_read_back(
    asterisk_node: AsteriskNode, ivr_app: web.Application, ami: tuple[AmiClient, EventLog]
) -> None:
    await _vip_has_a_pin(ivr_app)
    # the PIN while it is asked, then 3 again and again until the menu takes it (keys pressed
    # while the order is read back are not heard); the caller hangs up after the read-back
    call = await call_through_ivr(
        ami,
        asterisk_node,
        VIP[1],
        VIP[0],
        until="hung_up",
        within=60,
        dtmf=f"{PIN}#" + "ww3" * 10,
        pre_wait=5,
        patience=22,
    )
    row = await stored_interaction(ivr_app, call)
    steps = [s["step"] for s in row.ivr_path]
    start = steps.index("last_order")
    assert steps[start - 1 : start + 4] == ["menu", "last_order", "say_amount", "say_days", "menu"]
    by_step = {s["step"]: s for s in row.ivr_path}
    assert by_step["identify"]["input"] == "caller id, pin verified"
    assert by_step["last_order"]["input"] == "last_order_amount=1234, last_order_days=3"
    assert by_step["say_amount"]["input"] == "1234"
    assert by_step["say_days"]["input"] == "3"


@pytest.mark.asyncio
async def test_caller_id_alone_pressing_3_hears_no_order(
    asterisk_node: AsteriskNode, ivr_app: web.Application, ami: tuple[AmiClient, EventLog]
) -> None:
    """The customer's number, no PIN on file: anyone may send that caller ID, so the IVR names
    the customer for routing and the pop but reads nothing personal out."""
    call = await call_through_ivr(
        ami,
        asterisk_node,
        VIP[1],
        VIP[0],
        until="hung_up",
        within=60,
        dtmf="3",
        pre_wait=6,
        patience=14,
    )
    row = await stored_interaction(ivr_app, call)
    steps = [s["step"] for s in row.ivr_path]
    start = steps.index("last_order")
    assert steps[start - 1 : start + 3] == ["menu", "last_order", "order_needs_pin", "menu"]
    assert row.ivr_path[start]["input"] == "not verified"
    assert "say_amount" not in steps
    assert row.routing["attributes"]["verified"] == "no"
    assert "1234" not in repr((row.ivr_path, row.routing))


@pytest.mark.asyncio
async def test_server_out_of_reach_sends_the_call_to_the_default_queue(
    asterisk_node: AsteriskNode,
    ami: tuple[AmiClient, EventLog],
    tmp_path: Path,
    transport: Literal["fastagi", "agi"],
) -> None:
    """No CTI server: the FastAGI connection fails, or cti-agi cannot reach the server and
    exits 1; either way AGISTATUS=FAILURE and the dialplan's fallback takes the call."""
    log = ami[1]
    settings = asterisk_node.settings.model_copy(
        update={"ivr": IvrSettings(inbound_flow="main", transport=transport)}
    )
    classic = transport == "agi"
    if classic:
        settings = with_classic_agi(settings)
    async with classic_agi(asterisk_node, settings, tmp_path) if classic else nullcontext():
        call = await call_through_ivr(ami, asterisk_node, VIP[1], VIP[0], patience=3)
        join = await log.wait_for(
            event_is("QueueCallerJoin", Linkedid=call.uniqueid), 30, "queue join"
        )
    assert join["Queue"] == asterisk_node.settings.dialplan.default_queue
    variables = {
        str(e["Variable"]): str(e.get("Value", ""))
        for e in log.events
        if e.get("Event") == "VarSet" and e.get("Linkedid") == call.uniqueid
    }
    assert variables["AGISTATUS"] == "FAILURE"
    assert variables["CTI_FALLBACK"] == "1"
    assert "CTI_QUEUE" not in variables
    if classic:
        assert "CTI server unavailable" in (tmp_path / "cti-agi.log").read_text()
